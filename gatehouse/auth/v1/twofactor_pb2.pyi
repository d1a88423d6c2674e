import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gatehouse.auth.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TotpInfo(_message.Message):
    __slots__ = ("created_at", "last_used_at")
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    def __init__(self, created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WebAuthnKey(_message.Message):
    __slots__ = ("id", "label", "created_at", "last_used_at", "passkey")
    ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_AT_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    label: str
    created_at: _timestamp_pb2.Timestamp
    last_used_at: _timestamp_pb2.Timestamp
    passkey: bool
    def __init__(self, id: _Optional[str] = ..., label: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., passkey: _Optional[bool] = ...) -> None: ...

class GetTwoFactorStatusRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class GetTwoFactorStatusResponse(_message.Message):
    __slots__ = ("two_factor_enabled", "totp", "webauthn_keys", "recovery_codes_remaining", "required_by", "methods")
    TWO_FACTOR_ENABLED_FIELD_NUMBER: _ClassVar[int]
    TOTP_FIELD_NUMBER: _ClassVar[int]
    WEBAUTHN_KEYS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODES_REMAINING_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_BY_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    two_factor_enabled: bool
    totp: TotpInfo
    webauthn_keys: _containers.RepeatedCompositeFieldContainer[WebAuthnKey]
    recovery_codes_remaining: int
    required_by: _containers.RepeatedScalarFieldContainer[str]
    methods: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, two_factor_enabled: _Optional[bool] = ..., totp: _Optional[_Union[TotpInfo, _Mapping]] = ..., webauthn_keys: _Optional[_Iterable[_Union[WebAuthnKey, _Mapping]]] = ..., recovery_codes_remaining: _Optional[int] = ..., required_by: _Optional[_Iterable[str]] = ..., methods: _Optional[_Iterable[str]] = ...) -> None: ...

class BeginTotpSetupRequest(_message.Message):
    __slots__ = ("session_token", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class BeginTotpSetupResponse(_message.Message):
    __slots__ = ("provisioning_uri", "secret", "qr_code_svg", "expires_at")
    PROVISIONING_URI_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    QR_CODE_SVG_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    provisioning_uri: str
    secret: str
    qr_code_svg: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, provisioning_uri: _Optional[str] = ..., secret: _Optional[str] = ..., qr_code_svg: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConfirmTotpSetupRequest(_message.Message):
    __slots__ = ("session_token", "code", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    code: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., code: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ConfirmTotpSetupResponse(_message.Message):
    __slots__ = ("recovery_codes",)
    RECOVERY_CODES_FIELD_NUMBER: _ClassVar[int]
    recovery_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recovery_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class RemoveTotpRequest(_message.Message):
    __slots__ = ("session_token", "password", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    password: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RemoveTotpResponse(_message.Message):
    __slots__ = ("two_factor_enabled",)
    TWO_FACTOR_ENABLED_FIELD_NUMBER: _ClassVar[int]
    two_factor_enabled: bool
    def __init__(self, two_factor_enabled: _Optional[bool] = ...) -> None: ...

class BeginWebAuthnRegistrationRequest(_message.Message):
    __slots__ = ("session_token", "client", "passkey")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client: _common_pb2.ClientInfo
    passkey: bool
    def __init__(self, session_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ..., passkey: _Optional[bool] = ...) -> None: ...

class BeginWebAuthnRegistrationResponse(_message.Message):
    __slots__ = ("options_json",)
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    options_json: str
    def __init__(self, options_json: _Optional[str] = ...) -> None: ...

class CompleteWebAuthnRegistrationRequest(_message.Message):
    __slots__ = ("session_token", "label", "credential_json", "client", "passkey")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    label: str
    credential_json: str
    client: _common_pb2.ClientInfo
    passkey: bool
    def __init__(self, session_token: _Optional[str] = ..., label: _Optional[str] = ..., credential_json: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ..., passkey: _Optional[bool] = ...) -> None: ...

class CompleteWebAuthnRegistrationResponse(_message.Message):
    __slots__ = ("key", "recovery_codes")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODES_FIELD_NUMBER: _ClassVar[int]
    key: WebAuthnKey
    recovery_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[_Union[WebAuthnKey, _Mapping]] = ..., recovery_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class RenameWebAuthnKeyRequest(_message.Message):
    __slots__ = ("session_token", "key_id", "label", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    key_id: str
    label: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., key_id: _Optional[str] = ..., label: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RenameWebAuthnKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: WebAuthnKey
    def __init__(self, key: _Optional[_Union[WebAuthnKey, _Mapping]] = ...) -> None: ...

class RemoveWebAuthnKeyRequest(_message.Message):
    __slots__ = ("session_token", "key_id", "password", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    key_id: str
    password: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., key_id: _Optional[str] = ..., password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RemoveWebAuthnKeyResponse(_message.Message):
    __slots__ = ("two_factor_enabled",)
    TWO_FACTOR_ENABLED_FIELD_NUMBER: _ClassVar[int]
    two_factor_enabled: bool
    def __init__(self, two_factor_enabled: _Optional[bool] = ...) -> None: ...

class RegenerateRecoveryCodesRequest(_message.Message):
    __slots__ = ("session_token", "password", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    password: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RegenerateRecoveryCodesResponse(_message.Message):
    __slots__ = ("recovery_codes",)
    RECOVERY_CODES_FIELD_NUMBER: _ClassVar[int]
    recovery_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recovery_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class BeginWebAuthnLoginRequest(_message.Message):
    __slots__ = ("pending_login_token", "client")
    PENDING_LOGIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    pending_login_token: str
    client: _common_pb2.ClientInfo
    def __init__(self, pending_login_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class BeginWebAuthnLoginResponse(_message.Message):
    __slots__ = ("options_json",)
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    options_json: str
    def __init__(self, options_json: _Optional[str] = ...) -> None: ...

class CompleteLoginRequest(_message.Message):
    __slots__ = ("pending_login_token", "totp_code", "webauthn_assertion_json", "recovery_code", "client", "device_token")
    PENDING_LOGIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTP_CODE_FIELD_NUMBER: _ClassVar[int]
    WEBAUTHN_ASSERTION_JSON_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    pending_login_token: str
    totp_code: str
    webauthn_assertion_json: str
    recovery_code: str
    client: _common_pb2.ClientInfo
    device_token: str
    def __init__(self, pending_login_token: _Optional[str] = ..., totp_code: _Optional[str] = ..., webauthn_assertion_json: _Optional[str] = ..., recovery_code: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ..., device_token: _Optional[str] = ...) -> None: ...

class CompleteLoginResponse(_message.Message):
    __slots__ = ("session_token", "expires_at", "user", "method", "recovery_codes_remaining", "confirmation_browser_token")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_CODES_REMAINING_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_BROWSER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    expires_at: _timestamp_pb2.Timestamp
    user: _common_pb2.User
    method: str
    recovery_codes_remaining: int
    confirmation_browser_token: str
    def __init__(self, session_token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user: _Optional[_Union[_common_pb2.User, _Mapping]] = ..., method: _Optional[str] = ..., recovery_codes_remaining: _Optional[int] = ..., confirmation_browser_token: _Optional[str] = ...) -> None: ...

class BeginPasskeyLoginRequest(_message.Message):
    __slots__ = ("client",)
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    client: _common_pb2.ClientInfo
    def __init__(self, client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class BeginPasskeyLoginResponse(_message.Message):
    __slots__ = ("options_json",)
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    options_json: str
    def __init__(self, options_json: _Optional[str] = ...) -> None: ...

class CompletePasskeyLoginRequest(_message.Message):
    __slots__ = ("assertion_json", "client")
    ASSERTION_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    assertion_json: str
    client: _common_pb2.ClientInfo
    def __init__(self, assertion_json: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class CompletePasskeyLoginResponse(_message.Message):
    __slots__ = ("session_token", "expires_at", "user")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    expires_at: _timestamp_pb2.Timestamp
    user: _common_pb2.User
    def __init__(self, session_token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user: _Optional[_Union[_common_pb2.User, _Mapping]] = ...) -> None: ...
