"""Code every Lambda of the platform shares: the typed contracts with the stacks, AWS clients, logging.

Bundled beside each function's handler (so Lambdas import `common`), and imported by the stacks as
`lambdas.common`, so both sides of every contract use the same definition.
"""
