"""S3 prefix URIs given to pipeline steps: a bucket name (3-63 characters) and a prefix ending in '/'.

The trailing '/' matters: without it, `incoming` also matches `incoming-old/` and a dated folder would
be appended outside the prefix.
"""

from __future__ import annotations

import re

S3_PREFIX_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>(?:[^/]+/)*)")


class InputError(ValueError):
    """A malformed step input; the message names the parameter and the form it needs."""


def split_s3_prefix(uri: str, name: str) -> tuple[str, str]:
    """(bucket, prefix) of `uri`, or InputError naming the pipeline parameter `name`."""
    match = S3_PREFIX_URI.fullmatch(uri)
    if not match:
        raise InputError(
            f"{name} must look like s3://bucket/prefix/ (ending in '/'), got {uri!r}; "
            "set the pipeline parameter to a prefix, not an object or a bucket alone"
        )
    return match["bucket"], match["prefix"]
