"""Counted nouns (facemath_core.base.text): the English rule, 1 takes the singular and every other count the plural."""

import pytest

from facemath_core.base.text import plural


@pytest.mark.parametrize(
    "count, noun, nouns, expected",
    [
        (1, "image", None, "1 image"),
        (0, "image", None, "0 images"),
        (2, "image", None, "2 images"),
        (16, "flagged face", None, "16 flagged faces"),
        (1, "match", "matches", "1 match"),
        (3, "match", "matches", "3 matches"),
    ],
)
def test_one_is_singular_and_every_other_count_plural(count, noun, nouns, expected):
    assert plural(count, noun, nouns) == expected
