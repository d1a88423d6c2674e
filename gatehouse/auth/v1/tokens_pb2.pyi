import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gatehouse.auth.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProjectToken(_message.Message):
    __slots__ = ("info", "reach", "other_projects")
    class Reach(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REACH_UNSPECIFIED: _ClassVar[ProjectToken.Reach]
        REACH_ACCOUNT: _ClassVar[ProjectToken.Reach]
        REACH_PROJECT: _ClassVar[ProjectToken.Reach]
        REACH_PROJECTS: _ClassVar[ProjectToken.Reach]
    REACH_UNSPECIFIED: ProjectToken.Reach
    REACH_ACCOUNT: ProjectToken.Reach
    REACH_PROJECT: ProjectToken.Reach
    REACH_PROJECTS: ProjectToken.Reach
    INFO_FIELD_NUMBER: _ClassVar[int]
    REACH_FIELD_NUMBER: _ClassVar[int]
    OTHER_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    info: _common_pb2.TokenInfo
    reach: ProjectToken.Reach
    other_projects: int
    def __init__(self, info: _Optional[_Union[_common_pb2.TokenInfo, _Mapping]] = ..., reach: _Optional[_Union[ProjectToken.Reach, str]] = ..., other_projects: _Optional[int] = ...) -> None: ...

class ListProjectTokensRequest(_message.Message):
    __slots__ = ("session_token", "project_name")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ...) -> None: ...

class ListProjectTokensResponse(_message.Message):
    __slots__ = ("tokens", "has_publisher")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    HAS_PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[ProjectToken]
    has_publisher: bool
    def __init__(self, tokens: _Optional[_Iterable[_Union[ProjectToken, _Mapping]]] = ..., has_publisher: _Optional[bool] = ...) -> None: ...

class RevokeProjectTokenRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "token_id", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    token_id: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., token_id: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RevokeProjectTokenResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: _common_pb2.TokenInfo
    def __init__(self, info: _Optional[_Union[_common_pb2.TokenInfo, _Mapping]] = ...) -> None: ...

class RevokeLongLivedTokensRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "include_account_wide", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ACCOUNT_WIDE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    include_account_wide: bool
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., include_account_wide: _Optional[bool] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RevokeLongLivedTokensResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenInfo]
    def __init__(self, revoked: _Optional[_Iterable[_Union[_common_pb2.TokenInfo, _Mapping]]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("session_token", "description", "scope", "expires_at", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    description: str
    scope: _common_pb2.TokenScope
    expires_at: _timestamp_pb2.Timestamp
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., description: _Optional[str] = ..., scope: _Optional[_Union[_common_pb2.TokenScope, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "info")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    token: str
    info: _common_pb2.TokenInfo
    def __init__(self, token: _Optional[str] = ..., info: _Optional[_Union[_common_pb2.TokenInfo, _Mapping]] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[_common_pb2.TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[_common_pb2.TokenInfo, _Mapping]]] = ...) -> None: ...

class DeleteTokenRequest(_message.Message):
    __slots__ = ("session_token", "token_id", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    token_id: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., token_id: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class DeleteTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyUploadTokenRequest(_message.Message):
    __slots__ = ("token", "project_name", "client", "token_only", "version")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ONLY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    token: str
    project_name: str
    client: _common_pb2.ClientInfo
    token_only: bool
    version: str
    def __init__(self, token: _Optional[str] = ..., project_name: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ..., token_only: _Optional[bool] = ..., version: _Optional[str] = ...) -> None: ...

class VerifyUploadTokenResponse(_message.Message):
    __slots__ = ("user_id", "username", "project_id", "project_name", "token_id", "project_created", "role", "publisher")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_CREATED_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    project_id: str
    project_name: str
    token_id: str
    project_created: bool
    role: _common_pb2.Role
    publisher: _common_pb2.PublisherRef
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., project_id: _Optional[str] = ..., project_name: _Optional[str] = ..., token_id: _Optional[str] = ..., project_created: _Optional[bool] = ..., role: _Optional[_Union[_common_pb2.Role, str]] = ..., publisher: _Optional[_Union[_common_pb2.PublisherRef, _Mapping]] = ...) -> None: ...

class VerifyUploadTokenCall(_message.Message):
    __slots__ = ("id", "request", "timeout_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    id: int
    request: VerifyUploadTokenRequest
    timeout_ms: int
    def __init__(self, id: _Optional[int] = ..., request: _Optional[_Union[VerifyUploadTokenRequest, _Mapping]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class VerifyUploadTokenResult(_message.Message):
    __slots__ = ("id", "status", "response")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    id: int
    status: _common_pb2.CallStatus
    response: VerifyUploadTokenResponse
    def __init__(self, id: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.CallStatus, _Mapping]] = ..., response: _Optional[_Union[VerifyUploadTokenResponse, _Mapping]] = ...) -> None: ...

class VerifyIndexTokenRequest(_message.Message):
    __slots__ = ("token", "client")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    client: _common_pb2.ClientInfo
    def __init__(self, token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class VerifyIndexTokenResponse(_message.Message):
    __slots__ = ("user_id", "username", "token_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    token_id: str
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...
