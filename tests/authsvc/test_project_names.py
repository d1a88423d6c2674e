"""One project-name rule on both sides of the wire: authsvc's `projects.names` and the gateway's
upload form both use packaging's core metadata `Name` check, so they accept the same names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authsvc.errors import InvalidArgument
from authsvc.projects.names import MAX_NAME, check_project_name, is_project_name
from uploadgw.errors import InvalidUpload
from uploadgw.uploads.form import parse_form


def gateway_accepts(name: str) -> bool:
    """Whether the upload form takes `name` (a valid name gets as far as the missing version)."""
    fields = {":action": ["file_upload"], "protocol_version": ["1"], "metadata_version": ["2.1"], "name": [name]}
    with pytest.raises(InvalidUpload) as refused:
        parse_form(fields)
    return "for Name." not in str(refused.value)


@pytest.mark.parametrize("name", ["a", "A1", "zope.interface", "Foo_Bar-baz", "x" * MAX_NAME])
def test_valid_names_pass_both(name):
    assert is_project_name(name) and gateway_accepts(name)
    assert check_project_name(name) == name.lower().replace("_", "-").replace(".", "-")


# Regression: the hand-written regex used before (`$`, Unicode case folding) let through a name
# ending in a newline and letters that fold to ASCII ones (a look-alike of another project's name).
@pytest.mark.parametrize("name", ["", "-a", "a-", ".a", "a b", "a/b", "ä", "foo\n", "\u212a", "\u017fx", "a\u0130"])
def test_invalid_names_fail_both(name):
    assert not is_project_name(name)
    assert not gateway_accepts(name)
    with pytest.raises(InvalidArgument):
        check_project_name(name)


@given(st.text(alphabet=st.sampled_from("aZ09._- \n\u212a\u017f/é"), max_size=12))
def test_both_sides_agree(name):
    assert is_project_name(name) == gateway_accepts(name)
