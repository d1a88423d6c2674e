from gatehouse.auth.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DiscloseTokensRequest(_message.Message):
    __slots__ = ("body", "key_identifier", "signature", "client")
    BODY_FIELD_NUMBER: _ClassVar[int]
    KEY_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    key_identifier: str
    signature: str
    client: _common_pb2.ClientInfo
    def __init__(self, body: _Optional[bytes] = ..., key_identifier: _Optional[str] = ..., signature: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class DiscloseTokensResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
