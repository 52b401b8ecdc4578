"""Azure SDK exceptions are translated into uploadsession's tree at one boundary."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any

import azure.core.exceptions as azure_exceptions
import azure.data.tables
import azure.storage.blob
import pytest
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest

from uploadsession.errors import (
    ApiError,
    ConcurrencyConflict,
    EntityExists,
    InvalidRequest,
    ServiceUnavailable,
    StoreError,
)
from uploadsession.store import translate_azure_errors


class FakeResponse:
    """Just enough of an azure.core HTTP response for any SDK exception's constructor."""

    def __init__(self, status: int = 500) -> None:
        self.status_code = status
        self.reason = "Reason"
        self.request = HttpRequest("GET", "https://account.table.core.windows.net/t")
        self.headers: dict[str, str] = {"x-ms-error-code": "SomethingFailed"}
        self.content_type = "application/json"
        self._text = '{"odata.error": {"code": "SomethingFailed", "message": {"value": "m"}}}'

    def text(self, encoding: str | None = None) -> str:
        return self._text

    def body(self) -> bytes:
        return self._text.encode()

    def read(self) -> bytes:
        return self.body()


def _azure_error_classes(*modules: ModuleType) -> list[type[AzureError]]:
    found: dict[str, type[AzureError]] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, AzureError):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


SDK_ERRORS = _azure_error_classes(azure_exceptions, azure.data.tables, azure.storage.blob)


def _instantiate(cls: type[AzureError]) -> AzureError:
    """An instance of ``cls``, whatever its constructor wants."""
    attempts: list[Callable[[], Any]] = [
        lambda: cls("storage trouble"),
        lambda: cls(message="storage trouble"),
        lambda: cls(FakeResponse()),
        lambda: cls(response=FakeResponse()),  # type: ignore[call-arg]
        lambda: cls("storage trouble", FakeResponse(), []),
        lambda: cls(),  # type: ignore[call-arg]
    ]
    problems = []
    for attempt in attempts:
        try:
            error = attempt()
        except Exception as exc:  # try the next shape of constructor
            problems.append(f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(error, cls):
            return error
    raise AssertionError(f"cannot instantiate {cls.__name__}: {problems}")


def _translate(error: BaseException) -> BaseException:
    with pytest.raises(BaseException) as caught, translate_azure_errors("testing"):
        raise error
    return caught.value


def test_the_sdk_exception_list_is_not_empty() -> None:
    names = {cls.__name__ for cls in SDK_ERRORS}
    assert {"AzureError", "HttpResponseError", "ServiceRequestError"} <= names


@pytest.mark.parametrize("cls", SDK_ERRORS, ids=lambda cls: cls.__name__)
def test_every_azure_exception_is_translated_into_our_tree(cls: type[AzureError]) -> None:
    translated = _translate(_instantiate(cls))
    assert isinstance(translated, ApiError | StoreError), type(translated)
    assert not isinstance(translated, AzureError)
    assert isinstance(translated.__cause__, cls)


@pytest.mark.parametrize("cls", SDK_ERRORS, ids=lambda cls: cls.__name__)
def test_an_azure_exception_becomes_a_503_or_a_storage_signal(cls: type[AzureError]) -> None:
    translated = _translate(_instantiate(cls))
    if isinstance(translated, ApiError):
        assert isinstance(translated, ServiceUnavailable)
        assert int(translated.headers()["Retry-After"]) > 0
        assert "storage trouble" not in translated.message  # SDK text is not echoed


def test_an_existing_entity_is_entity_exists() -> None:
    assert isinstance(_translate(ResourceExistsError("exists")), EntityExists)


def test_a_modified_resource_is_a_concurrency_conflict() -> None:
    assert isinstance(_translate(ResourceModifiedError("modified")), ConcurrencyConflict)


def test_a_412_is_a_concurrency_conflict() -> None:
    error = HttpResponseError("precondition", response=FakeResponse(412))
    assert error.status_code == 412
    assert isinstance(_translate(error), ConcurrencyConflict)


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_is_service_unavailable_with_retry_after(status: int) -> None:
    error = HttpResponseError("busy", response=FakeResponse(status))
    translated = _translate(error)
    assert isinstance(translated, ServiceUnavailable)
    assert translated.status == 503
    assert int(translated.headers()["Retry-After"]) >= 1


@pytest.mark.parametrize("status", [400, 403, 500])
def test_other_refusals_are_service_unavailable(status: int) -> None:
    error = HttpResponseError("no", response=FakeResponse(status))
    assert isinstance(_translate(error), ServiceUnavailable)


@pytest.mark.parametrize(
    "error",
    [
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        ClientAuthenticationError("bad key"),
    ],
)
def test_an_outage_or_bad_credentials_is_service_unavailable(error: AzureError) -> None:
    translated = _translate(error)
    assert isinstance(translated, ServiceUnavailable)
    assert "Retry-After" in translated.headers()


@pytest.mark.parametrize(
    "error", [InvalidRequest("x"), EntityExists("x"), ConcurrencyConflict("x")]
)
def test_our_own_exceptions_pass_through_unchanged(error: Exception) -> None:
    assert _translate(error) is error


def test_a_non_azure_bug_is_not_disguised_as_an_outage() -> None:
    error = KeyError("bug")
    assert _translate(error) is error


def test_nothing_happens_without_an_exception() -> None:
    with translate_azure_errors("testing"):
        value = 1
    assert value == 1
