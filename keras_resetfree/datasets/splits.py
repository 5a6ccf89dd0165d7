"""Deterministic splits by speaker, so no speaker is in two partitions."""

import hashlib


def speaker_partition(speaker, validation_percent=10.0, test_percent=10.0):
    """`"train"`, `"validation"` or `"test"` for a speaker id, stable across runs and machines.

    The speaker id is hashed (SHA-1) to a number in [0, 100), as the Speech
    Commands reference code does for its split, so adding files never moves
    a speaker to another partition.
    """
    value = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16) % 10000 / 100.0
    if value < validation_percent:
        return "validation"
    if value < validation_percent + test_percent:
        return "test"
    return "train"
