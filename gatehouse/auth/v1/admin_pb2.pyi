import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gatehouse.auth.v1 import common_pb2 as _common_pb2
from gatehouse.auth.v1 import projects_pb2 as _projects_pb2
from gatehouse.auth.v1 import publishing_pb2 as _publishing_pb2
from gatehouse.auth.v1 import tokens_pb2 as _tokens_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdminCreateUserRequest(_message.Message):
    __slots__ = ("username", "email", "password", "email_verified", "is_admin", "name")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    email: str
    password: str
    email_verified: bool
    is_admin: bool
    name: str
    def __init__(self, username: _Optional[str] = ..., email: _Optional[str] = ..., password: _Optional[str] = ..., email_verified: _Optional[bool] = ..., is_admin: _Optional[bool] = ..., name: _Optional[str] = ...) -> None: ...

class AdminGetUserRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class AdminUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _common_pb2.User
    def __init__(self, user: _Optional[_Union[_common_pb2.User, _Mapping]] = ...) -> None: ...

class AdminSetUserActiveRequest(_message.Message):
    __slots__ = ("username", "active", "reason")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    username: str
    active: bool
    reason: str
    def __init__(self, username: _Optional[str] = ..., active: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class AdminSetAdminRequest(_message.Message):
    __slots__ = ("username", "is_admin")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    username: str
    is_admin: bool
    def __init__(self, username: _Optional[str] = ..., is_admin: _Optional[bool] = ...) -> None: ...

class AdminMintTokenRequest(_message.Message):
    __slots__ = ("username", "description", "scope", "expires_at")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    username: str
    description: str
    scope: _common_pb2.TokenScope
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, username: _Optional[str] = ..., description: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.TokenScope, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AdminMintTokenResponse(_message.Message):
    __slots__ = ("token", "info")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    token: str
    info: _common_pb2.TokenInfo
    def __init__(self, token: _Optional[str] = ..., info: _Optional[_Union[_common_pb2.TokenInfo, _Mapping]] = ...) -> None: ...

class AdminListTokensRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class AdminListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_common_pb2.TokenInfo, _Mapping]]] = ...) -> None: ...

class AdminRevokeTokenRequest(_message.Message):
    __slots__ = ("token_id",)
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    def __init__(self, token_id: _Optional[str] = ...) -> None: ...

class AdminRevokeTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdminRevokeLongLivedTokensRequest(_message.Message):
    __slots__ = ("project_name", "include_account_wide")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ACCOUNT_WIDE_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    include_account_wide: bool
    def __init__(self, project_name: _Optional[str] = ..., include_account_wide: _Optional[bool] = ...) -> None: ...

class AdminAddRoleRequest(_message.Message):
    __slots__ = ("project_name", "username", "role", "create_project")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATE_PROJECT_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    username: str
    role: _common_pb2.Role
    create_project: bool
    def __init__(self, project_name: _Optional[str] = ..., username: _Optional[str] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., create_project: _Optional[bool] = ...) -> None: ...

class AdminAddRoleResponse(_message.Message):
    __slots__ = ("role", "project")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    role: _projects_pb2.RoleAssignment
    project: _common_pb2.Project
    def __init__(self, role: _Optional[_Union[_projects_pb2.RoleAssignment, _Mapping]] = ..., project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ...) -> None: ...

class AdminRemoveRoleRequest(_message.Message):
    __slots__ = ("project_name", "username")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    username: str
    def __init__(self, project_name: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class AdminRemoveRoleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AdminDeleteProjectRequest(_message.Message):
    __slots__ = ("project_name",)
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    def __init__(self, project_name: _Optional[str] = ...) -> None: ...

class AdminDeleteProjectResponse(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class AdminSetProjectTwoFactorRequiredRequest(_message.Message):
    __slots__ = ("project_name", "required")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    required: bool
    def __init__(self, project_name: _Optional[str] = ..., required: _Optional[bool] = ...) -> None: ...

class AdminListPublishersRequest(_message.Message):
    __slots__ = ("project_name",)
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    def __init__(self, project_name: _Optional[str] = ...) -> None: ...

class AdminAddPublisherRequest(_message.Message):
    __slots__ = ("project_name", "spec")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    spec: _publishing_pb2.PublisherSpec
    def __init__(self, project_name: _Optional[str] = ..., spec: _Optional[_Union[_publishing_pb2.PublisherSpec, _Mapping]] = ...) -> None: ...

class AdminRemovePublisherRequest(_message.Message):
    __slots__ = ("project_name", "publisher_id")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    publisher_id: str
    def __init__(self, project_name: _Optional[str] = ..., publisher_id: _Optional[str] = ...) -> None: ...

class AdminListPendingPublishersRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class AdminAddPendingPublisherRequest(_message.Message):
    __slots__ = ("username", "project_name", "spec")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    username: str
    project_name: str
    spec: _publishing_pb2.PublisherSpec
    def __init__(self, username: _Optional[str] = ..., project_name: _Optional[str] = ..., spec: _Optional[_Union[_publishing_pb2.PublisherSpec, _Mapping]] = ...) -> None: ...

class AdminRemovePendingPublisherRequest(_message.Message):
    __slots__ = ("pending_publisher_id",)
    PENDING_PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    pending_publisher_id: str
    def __init__(self, pending_publisher_id: _Optional[str] = ...) -> None: ...

class AdminSetTrustedPublishingOnlyRequest(_message.Message):
    __slots__ = ("project_name", "enabled")
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    project_name: str
    enabled: bool
    def __init__(self, project_name: _Optional[str] = ..., enabled: _Optional[bool] = ...) -> None: ...
