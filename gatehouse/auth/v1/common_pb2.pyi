import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_OWNER: _ClassVar[Role]
    ROLE_MAINTAINER: _ClassVar[Role]
ROLE_UNSPECIFIED: Role
ROLE_OWNER: Role
ROLE_MAINTAINER: Role

class ClientInfo(_message.Message):
    __slots__ = ("ip_address", "user_agent")
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    ip_address: str
    user_agent: str
    def __init__(self, ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("id", "username", "name", "primary_email", "email_verified", "is_active", "is_admin", "created_at", "two_factor_enabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_EMAIL_FIELD_NUMBER: _ClassVar[int]
    EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    IS_ADMIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TWO_FACTOR_ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    username: str
    name: str
    primary_email: str
    email_verified: bool
    is_active: bool
    is_admin: bool
    created_at: _timestamp_pb2.Timestamp
    two_factor_enabled: bool
    def __init__(self, id: _Optional[str] = ..., username: _Optional[str] = ..., name: _Optional[str] = ..., primary_email: _Optional[str] = ..., email_verified: _Optional[bool] = ..., is_active: _Optional[bool] = ..., is_admin: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., two_factor_enabled: _Optional[bool] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "name", "normalized_name", "created_at", "two_factor_required", "trusted_publishing_only", "phishing_resistant_only")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    TWO_FACTOR_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_PUBLISHING_ONLY_FIELD_NUMBER: _ClassVar[int]
    PHISHING_RESISTANT_ONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    normalized_name: str
    created_at: _timestamp_pb2.Timestamp
    two_factor_required: bool
    trusted_publishing_only: bool
    phishing_resistant_only: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., normalized_name: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., two_factor_required: _Optional[bool] = ..., trusted_publishing_only: _Optional[bool] = ..., phishing_resistant_only: _Optional[bool] = ...) -> None: ...

class TokenScope(_message.Message):
    __slots__ = ("all_projects", "project_names", "allowed_networks", "release_version")
    ALL_PROJECTS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAMES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    all_projects: bool
    project_names: _containers.RepeatedScalarFieldContainer[str]
    allowed_networks: _containers.RepeatedScalarFieldContainer[str]
    release_version: str
    def __init__(self, all_projects: _Optional[bool] = ..., project_names: _Optional[_Iterable[str]] = ..., allowed_networks: _Optional[_Iterable[str]] = ..., release_version: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "description", "scope", "created_at", "last_used_at", "expires_at", "username")
    ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    description: str
    scope: TokenScope
    created_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    username: str
    def __init__(self, id: _Optional[str] = ..., description: _Optional[str] = ..., scope: _Optional[_Union[TokenScope, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., username: _Optional[str] = ...) -> None: ...

class CallStatus(_message.Message):
    __slots__ = ("code", "message", "retry_after_seconds", "details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    retry_after_seconds: int
    details: bytes
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ..., details: _Optional[bytes] = ...) -> None: ...

class PublisherRef(_message.Message):
    __slots__ = ("id", "kind", "display", "issuer_url", "run_claims")
    class RunClaimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    ISSUER_URL_FIELD_NUMBER: _ClassVar[int]
    RUN_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    display: str
    issuer_url: str
    run_claims: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., display: _Optional[str] = ..., issuer_url: _Optional[str] = ..., run_claims: _Optional[_Mapping[str, str]] = ...) -> None: ...
