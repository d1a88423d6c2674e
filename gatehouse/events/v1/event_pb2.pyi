import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Actor(_message.Message):
    __slots__ = ("kind", "user_id", "username")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Actor.Kind]
        USER: _ClassVar[Actor.Kind]
        OPERATOR: _ClassVar[Actor.Kind]
        SYSTEM: _ClassVar[Actor.Kind]
        ANONYMOUS: _ClassVar[Actor.Kind]
        PUBLISHER: _ClassVar[Actor.Kind]
    KIND_UNSPECIFIED: Actor.Kind
    USER: Actor.Kind
    OPERATOR: Actor.Kind
    SYSTEM: Actor.Kind
    ANONYMOUS: Actor.Kind
    PUBLISHER: Actor.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    kind: Actor.Kind
    user_id: str
    username: str
    def __init__(self, kind: _Optional[_Union[Actor.Kind, str]] = ..., user_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("event_id", "schema_version", "tag", "occurred_at", "source", "actor", "subject_user_id", "subject_username", "project_id", "project_name", "ip_address", "user_agent", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_USER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_USERNAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_NAME_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    schema_version: int
    tag: str
    occurred_at: _timestamp_pb2.Timestamp
    source: str
    actor: Actor
    subject_user_id: str
    subject_username: str
    project_id: str
    project_name: str
    ip_address: str
    user_agent: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., tag: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., subject_user_id: _Optional[str] = ..., subject_username: _Optional[str] = ..., project_id: _Optional[str] = ..., project_name: _Optional[str] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...
