import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from gatehouse.auth.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Email(_message.Message):
    __slots__ = ("address", "verified", "primary")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    address: str
    verified: bool
    primary: bool
    def __init__(self, address: _Optional[str] = ..., verified: _Optional[bool] = ..., primary: _Optional[bool] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "created_at", "last_seen_at", "expires_at", "authenticated_at", "ip_address", "user_agent", "current")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_AT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    authenticated_at: _timestamp_pb2.Timestamp
    ip_address: str
    user_agent: str
    current: bool
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., authenticated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., current: _Optional[bool] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("username", "email", "password", "name", "client")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    username: str
    email: str
    password: str
    name: str
    client: _common_pb2.ClientInfo
    def __init__(self, username: _Optional[str] = ..., email: _Optional[str] = ..., password: _Optional[str] = ..., name: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: _common_pb2.User
    def __init__(self, user: _Optional[_Union[_common_pb2.User, _Mapping]] = ...) -> None: ...

class VerifyEmailRequest(_message.Message):
    __slots__ = ("token", "client")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    client: _common_pb2.ClientInfo
    def __init__(self, token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class VerifyEmailResponse(_message.Message):
    __slots__ = ("user", "email")
    USER_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    user: _common_pb2.User
    email: str
    def __init__(self, user: _Optional[_Union[_common_pb2.User, _Mapping]] = ..., email: _Optional[str] = ...) -> None: ...

class ResendVerificationRequest(_message.Message):
    __slots__ = ("session_token", "email", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    email: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., email: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ResendVerificationResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddEmailRequest(_message.Message):
    __slots__ = ("session_token", "email", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    email: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., email: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class AddEmailResponse(_message.Message):
    __slots__ = ("emails",)
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    emails: _containers.RepeatedCompositeFieldContainer[Email]
    def __init__(self, emails: _Optional[_Iterable[_Union[Email, _Mapping]]] = ...) -> None: ...

class SetPrimaryEmailRequest(_message.Message):
    __slots__ = ("session_token", "email", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    email: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., email: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class SetPrimaryEmailResponse(_message.Message):
    __slots__ = ("emails",)
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    emails: _containers.RepeatedCompositeFieldContainer[Email]
    def __init__(self, emails: _Optional[_Iterable[_Union[Email, _Mapping]]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("user", "emails")
    USER_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    user: _common_pb2.User
    emails: _containers.RepeatedCompositeFieldContainer[Email]
    def __init__(self, user: _Optional[_Union[_common_pb2.User, _Mapping]] = ..., emails: _Optional[_Iterable[_Union[Email, _Mapping]]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("username", "password", "client", "device_token")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    client: _common_pb2.ClientInfo
    device_token: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ..., device_token: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("session_token", "expires_at", "user", "second_factor_required", "pending_login_token", "second_factor_methods", "device_token", "confirmation_browser_token")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    SECOND_FACTOR_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    PENDING_LOGIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECOND_FACTOR_METHODS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_BROWSER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    expires_at: _timestamp_pb2.Timestamp
    user: _common_pb2.User
    second_factor_required: bool
    pending_login_token: str
    second_factor_methods: _containers.RepeatedScalarFieldContainer[str]
    device_token: str
    confirmation_browser_token: str
    def __init__(self, session_token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user: _Optional[_Union[_common_pb2.User, _Mapping]] = ..., second_factor_required: _Optional[bool] = ..., pending_login_token: _Optional[str] = ..., second_factor_methods: _Optional[_Iterable[str]] = ..., device_token: _Optional[str] = ..., confirmation_browser_token: _Optional[str] = ...) -> None: ...

class ConfirmLoginRequest(_message.Message):
    __slots__ = ("link_token", "browser_token", "client")
    LINK_TOKEN_FIELD_NUMBER: _ClassVar[int]
    BROWSER_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    link_token: str
    browser_token: str
    client: _common_pb2.ClientInfo
    def __init__(self, link_token: _Optional[str] = ..., browser_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ValidateSessionRequest(_message.Message):
    __slots__ = ("session_token", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ValidateSessionResponse(_message.Message):
    __slots__ = ("user", "session", "reauth_required")
    USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REAUTH_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    user: _common_pb2.User
    session: Session
    reauth_required: bool
    def __init__(self, user: _Optional[_Union[_common_pb2.User, _Mapping]] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., reauth_required: _Optional[bool] = ...) -> None: ...

class ReauthenticateRequest(_message.Message):
    __slots__ = ("session_token", "password", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    password: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ReauthenticateResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("session_token",)
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    def __init__(self, session_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[Session, _Mapping]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("session_token", "session_id", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    session_id: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., session_id: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ("session_token", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChangePasswordRequest(_message.Message):
    __slots__ = ("session_token", "old_password", "new_password", "client")
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    OLD_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    session_token: str
    old_password: str
    new_password: str
    client: _common_pb2.ClientInfo
    def __init__(self, session_token: _Optional[str] = ..., old_password: _Optional[str] = ..., new_password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ChangePasswordResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RequestPasswordResetRequest(_message.Message):
    __slots__ = ("username_or_email", "client")
    USERNAME_OR_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    username_or_email: str
    client: _common_pb2.ClientInfo
    def __init__(self, username_or_email: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class RequestPasswordResetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResetPasswordRequest(_message.Message):
    __slots__ = ("token", "new_password", "client")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    NEW_PASSWORD_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    token: str
    new_password: str
    client: _common_pb2.ClientInfo
    def __init__(self, token: _Optional[str] = ..., new_password: _Optional[str] = ..., client: _Optional[_Union[_common_pb2.ClientInfo, _Mapping]] = ...) -> None: ...

class ResetPasswordResponse(_message.Message):
    __slots__ = ("second_factor_required",)
    SECOND_FACTOR_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    second_factor_required: bool
    def __init__(self, second_factor_required: _Optional[bool] = ...) -> None: ...
