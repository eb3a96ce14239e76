"""The raw abalone columns: what preprocess reads, the endpoint receives and Model Monitor's baseline describes.

Stdlib only: the stacks import it too (the drift alarm watches one metric per captured column).
"""

TARGET = "rings"
CATEGORY = "sex"
CATEGORIES = ("F", "I", "M")
MEASUREMENTS = ("length", "diameter", "height", "whole_weight", "shucked_weight", "viscera_weight", "shell_weight")
RAW_COLUMNS = (CATEGORY, *MEASUREMENTS, TARGET)
# A request's record, as the endpoint captures it and as the baseline holds it: the raw columns without the target.
CAPTURED_COLUMNS = RAW_COLUMNS[:-1]
