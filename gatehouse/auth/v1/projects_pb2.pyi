from gatehouse.auth.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Permission(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERMISSION_UNSPECIFIED: _ClassVar[Permission]
    PERMISSION_UPLOAD: _ClassVar[Permission]
    PERMISSION_MANAGE: _ClassVar[Permission]
    PERMISSION_VIEW_LOG: _ClassVar[Permission]
PERMISSION_UNSPECIFIED: Permission
PERMISSION_UPLOAD: Permission
PERMISSION_MANAGE: Permission
PERMISSION_VIEW_LOG: Permission

class RoleAssignment(_message.Message):
    __slots__ = ("username", "user_id", "role")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    username: str
    user_id: str
    role: _common_pb2.Role
    def __init__(self, username: _Optional[str] = ..., user_id: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class ProjectWithRole(_message.Message):
    __slots__ = ("project", "role")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    project: _common_pb2.Project
    role: _common_pb2.Role
    def __init__(self, project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetProjectResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _common_pb2.Project
    def __init__(self, project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ...) -> None: ...

class ListMyProjectsRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class ListMyProjectsResponse(_message.Message):
    __slots__ = ("projects",)
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[ProjectWithRole]
    def __init__(self, projects: _Optional[_Iterable[_Union[ProjectWithRole, _Mapping]]] = ...) -> None: ...

class ListRolesRequest(_message.Message):
    __slots__ = ("session_token", "project_name")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ...) -> None: ...

class ListRolesResponse(_message.Message):
    __slots__ = ("roles",)
    ROLES_FIELD_NUMBER: _ClassVar[int]
    roles: _containers.RepeatedCompositeFieldContainer[RoleAssignment]
    def __init__(self, roles: _Optional[_Iterable[_Union[RoleAssignment, _Mapping]]] = ...) -> None: ...

class AddRoleRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "username", "role", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    username: str
    role: _common_pb2.Role
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class AddRoleResponse(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: RoleAssignment
    def __init__(self, role: _Optional[_Union[RoleAssignment, _Mapping]] = ...) -> None: ...

class ChangeRoleRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "username", "role", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    username: str
    role: _common_pb2.Role
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ChangeRoleResponse(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: RoleAssignment
    def __init__(self, role: _Optional[_Union[RoleAssignment, _Mapping]] = ...) -> None: ...

class RemoveRoleRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "username", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    username: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., username: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RemoveRoleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteProjectRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "confirm_name", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIRM_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    confirm_name: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., confirm_name: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class DeleteProjectResponse(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class SetTwoFactorRequiredRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "required", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    required: bool
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., required: _Optional[bool] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class SetTwoFactorRequiredResponse(_message.Message):
    __slots__ = ("project", "usernames_without_two_factor")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    USERNAMES_WITHOUT_TWO_FACTOR_FIELD_NUMBER: _ClassVar[int]
    project: _common_pb2.Project
    usernames_without_two_factor: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ..., usernames_without_two_factor: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckPermissionRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "permission")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    permission: Permission
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., permission: _Optional[_Union[Permission, str]] = ...) -> None: ...

class CheckPermissionResponse(_message.Message):
    __slots__ = ("allowed", "reason", "role", "project", "reauth_required", "user_id", "username")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REAUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    role: _common_pb2.Role
    project: _common_pb2.Project
    reauth_required: bool
    user_id: str
    username: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ..., reauth_required: _Optional[bool] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class SetPhishingResistantOnlyRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "enabled", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    enabled: bool
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., enabled: _Optional[bool] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class SetPhishingResistantOnlyResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _common_pb2.Project
    def __init__(self, project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ...) -> None: ...
