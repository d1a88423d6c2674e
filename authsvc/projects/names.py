"""The project-name rule: the core metadata `Name` (PEP 508) as `packaging` checks it.

The rule is packaging's own, so the gateway (which checks the upload form's name) and this
service (project creation, token scopes, caveats) cannot drift apart.
"""

from __future__ import annotations

from packaging.utils import InvalidName, canonicalize_name

from authsvc.errors import InvalidArgument

MAX_NAME = 200


def is_project_name(name: str) -> bool:
    """Whether `name` is a valid distribution name: ASCII letters, digits, '.', '_' and '-',
    starting and ending with a letter or digit."""
    try:
        canonicalize_name(name, validate=True)
    except InvalidName:
        return False
    return True


def check_project_name(name: str) -> str:
    """The PEP 503 normalised form of a valid project name, or InvalidArgument."""
    if not name:
        raise InvalidArgument("Enter a project name.", reason="project_name_missing")
    if len(name) > MAX_NAME or not is_project_name(name):
        raise InvalidArgument(
            f"'{name[:MAX_NAME]}' is not a valid project name: use letters, digits, '.', '_' and '-', "
            "starting and ending with a letter or digit.", reason="project_name_invalid")
    return canonicalize_name(name)
