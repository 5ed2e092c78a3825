from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Class(_message.Message):
    __slots__ = ("qb_id", "name", "full_name", "is_sub_class", "is_active", "domain_source", "version_token", "is_sparse")
    QB_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    IS_SUB_CLASS_FIELD_NUMBER: _ClassVar[int]
    IS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    IS_SPARSE_FIELD_NUMBER: _ClassVar[int]
    qb_id: str
    name: str
    full_name: str
    is_sub_class: bool
    is_active: bool
    domain_source: str
    version_token: int
    is_sparse: bool
    def __init__(self, qb_id: _Optional[str] = ..., name: _Optional[str] = ..., full_name: _Optional[str] = ..., is_sub_class: _Optional[bool] = ..., is_active: _Optional[bool] = ..., domain_source: _Optional[str] = ..., version_token: _Optional[int] = ..., is_sparse: _Optional[bool] = ...) -> None: ...

class ClassRequest(_message.Message):
    __slots__ = ("classes",)
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[Class]
    def __init__(self, classes: _Optional[_Iterable[_Union[Class, _Mapping]]] = ...) -> None: ...

class ClassResult(_message.Message):
    __slots__ = ("stream_index", "request_index", "id", "qb_id", "sync_token", "status", "error_code", "error_message", "name", "full_name")
    STREAM_INDEX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    QB_ID_FIELD_NUMBER: _ClassVar[int]
    SYNC_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FULL_NAME_FIELD_NUMBER: _ClassVar[int]
    stream_index: int
    request_index: int
    id: str
    qb_id: str
    sync_token: str
    status: str
    error_code: str
    error_message: str
    name: str
    full_name: str
    def __init__(self, stream_index: _Optional[int] = ..., request_index: _Optional[int] = ..., id: _Optional[str] = ..., qb_id: _Optional[str] = ..., sync_token: _Optional[str] = ..., status: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., name: _Optional[str] = ..., full_name: _Optional[str] = ...) -> None: ...

class ClassResponse(_message.Message):
    __slots__ = ("ids", "message", "results")
    IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    message: str
    results: _containers.RepeatedCompositeFieldContainer[ClassResult]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., message: _Optional[str] = ..., results: _Optional[_Iterable[_Union[ClassResult, _Mapping]]] = ...) -> None: ...

class GetClassesRequest(_message.Message):
    __slots__ = ("ids", "qb_ids", "full_names")
    IDS_FIELD_NUMBER: _ClassVar[int]
    QB_IDS_FIELD_NUMBER: _ClassVar[int]
    FULL_NAMES_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    qb_ids: _containers.RepeatedScalarFieldContainer[str]
    full_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., qb_ids: _Optional[_Iterable[str]] = ..., full_names: _Optional[_Iterable[str]] = ...) -> None: ...
