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

class PublisherKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISHER_KIND_UNSPECIFIED: _ClassVar[PublisherKind]
    PUBLISHER_KIND_GITHUB: _ClassVar[PublisherKind]
    PUBLISHER_KIND_GITLAB: _ClassVar[PublisherKind]
    PUBLISHER_KIND_FORGEJO: _ClassVar[PublisherKind]
    PUBLISHER_KIND_GOOGLE: _ClassVar[PublisherKind]
    PUBLISHER_KIND_CUSTOM: _ClassVar[PublisherKind]
PUBLISHER_KIND_UNSPECIFIED: PublisherKind
PUBLISHER_KIND_GITHUB: PublisherKind
PUBLISHER_KIND_GITLAB: PublisherKind
PUBLISHER_KIND_FORGEJO: PublisherKind
PUBLISHER_KIND_GOOGLE: PublisherKind
PUBLISHER_KIND_CUSTOM: PublisherKind

class Issuer(_message.Message):
    __slots__ = ("url", "kind", "name", "claims")
    URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    url: str
    kind: PublisherKind
    name: str
    claims: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., kind: _Optional[_Union[PublisherKind, str]] = ..., name: _Optional[str] = ..., claims: _Optional[_Iterable[str]] = ...) -> None: ...

class PublisherSpec(_message.Message):
    __slots__ = ("issuer_url", "owner", "repository", "workflow", "environment", "email", "subject", "claims", "repository_id", "owner_id")
    class ClaimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ISSUER_URL_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    issuer_url: str
    owner: str
    repository: str
    workflow: str
    environment: str
    email: str
    subject: str
    claims: _containers.ScalarMap[str, str]
    repository_id: str
    owner_id: str
    def __init__(self, issuer_url: _Optional[str] = ..., owner: _Optional[str] = ..., repository: _Optional[str] = ..., workflow: _Optional[str] = ..., environment: _Optional[str] = ..., email: _Optional[str] = ..., subject: _Optional[str] = ..., claims: _Optional[_Mapping[str, str]] = ..., repository_id: _Optional[str] = ..., owner_id: _Optional[str] = ...) -> None: ...

class Publisher(_message.Message):
    __slots__ = ("id", "kind", "spec", "project_id", "project_name", "display", "bound_repository_id", "bound_owner_id", "created_at", "created_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    BOUND_REPOSITORY_ID_FIELD_NUMBER: _ClassVar[int]
    BOUND_OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: PublisherKind
    spec: PublisherSpec
    project_id: str
    project_name: str
    display: str
    bound_repository_id: str
    bound_owner_id: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[PublisherKind, str]] = ..., spec: _Optional[_Union[PublisherSpec, _Mapping]] = ..., project_id: _Optional[str] = ..., project_name: _Optional[str] = ..., display: _Optional[str] = ..., bound_repository_id: _Optional[str] = ..., bound_owner_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ...) -> None: ...

class PendingPublisher(_message.Message):
    __slots__ = ("id", "kind", "spec", "project_name", "display", "username", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: PublisherKind
    spec: PublisherSpec
    project_name: str
    display: str
    username: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[PublisherKind, str]] = ..., spec: _Optional[_Union[PublisherSpec, _Mapping]] = ..., project_name: _Optional[str] = ..., display: _Optional[str] = ..., username: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAudienceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAudienceResponse(_message.Message):
    __slots__ = ("audience",)
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    audience: str
    def __init__(self, audience: _Optional[str] = ...) -> None: ...

class MintPublisherTokenRequest(_message.Message):
    __slots__ = ("token", "single_use", "client")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SINGLE_USE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    single_use: bool
    client: _common_pb2.ClientInfo
    def __init__(self, token: _Optional[str] = ..., single_use: _Optional[bool] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class MintPublisherTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at", "project_names", "single_use")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAMES_FIELD_NUMBER: _ClassVar[int]
    SINGLE_USE_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    project_names: _containers.RepeatedScalarFieldContainer[str]
    single_use: bool
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., project_names: _Optional[_Iterable[str]] = ..., single_use: _Optional[bool] = ...) -> None: ...

class ListIssuersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListIssuersResponse(_message.Message):
    __slots__ = ("issuers",)
    ISSUERS_FIELD_NUMBER: _ClassVar[int]
    issuers: _containers.RepeatedCompositeFieldContainer[Issuer]
    def __init__(self, issuers: _Optional[_Iterable[_Union[Issuer, _Mapping]]] = ...) -> None: ...

class ListPublishersRequest(_message.Message):
    __slots__ = ("session_token", "project_name")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ...) -> None: ...

class ListPublishersResponse(_message.Message):
    __slots__ = ("publishers",)
    PUBLISHERS_FIELD_NUMBER: _ClassVar[int]
    publishers: _containers.RepeatedCompositeFieldContainer[Publisher]
    def __init__(self, publishers: _Optional[_Iterable[_Union[Publisher, _Mapping]]] = ...) -> None: ...

class AddPublisherRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "spec", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    spec: PublisherSpec
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., spec: _Optional[_Union[PublisherSpec, _Mapping]] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class AddPublisherResponse(_message.Message):
    __slots__ = ("publisher",)
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    publisher: Publisher
    def __init__(self, publisher: _Optional[_Union[Publisher, _Mapping]] = ...) -> None: ...

class RemovePublisherRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "publisher_id", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    publisher_id: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., publisher_id: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RemovePublisherResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPendingPublishersRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class ListPendingPublishersResponse(_message.Message):
    __slots__ = ("pending_publishers",)
    PENDING_PUBLISHERS_FIELD_NUMBER: _ClassVar[int]
    pending_publishers: _containers.RepeatedCompositeFieldContainer[PendingPublisher]
    def __init__(self, pending_publishers: _Optional[_Iterable[_Union[PendingPublisher, _Mapping]]] = ...) -> None: ...

class AddPendingPublisherRequest(_message.Message):
    __slots__ = ("session_token", "project_name", "spec", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    project_name: str
    spec: PublisherSpec
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., project_name: _Optional[str] = ..., spec: _Optional[_Union[PublisherSpec, _Mapping]] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class AddPendingPublisherResponse(_message.Message):
    __slots__ = ("pending_publisher",)
    PENDING_PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    pending_publisher: PendingPublisher
    def __init__(self, pending_publisher: _Optional[_Union[PendingPublisher, _Mapping]] = ...) -> None: ...

class RemovePendingPublisherRequest(_message.Message):
    __slots__ = ("session_token", "pending_publisher_id", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PENDING_PUBLISHER_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    pending_publisher_id: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., pending_publisher_id: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RemovePendingPublisherResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SetTrustedPublishingOnlyRequest(_message.Message):
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

class SetTrustedPublishingOnlyResponse(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _common_pb2.Project
    def __init__(self, project: _Optional[_Union[_common_pb2.Project, _Mapping]] = ...) -> None: ...
