"""The exceptions mlslo raises for problems a user can fix.

Every message says where the problem is (file, YAML path, column, row) and what to do about
it. The CLI prints ``str(error)`` as one line and exits 2; the HTTP layer returns it as JSON.
"""

from __future__ import annotations


def first_line(error: BaseException | str, empty: str | None = None) -> str:
    """The first line of an error's message, for one-line reports. An empty message gives
    ``empty`` (by default, the exception's type name)."""
    text = str(error).strip()
    if not text:
        return empty if empty is not None else type(error).__name__
    return text.splitlines()[0]


class MlsloError(Exception):
    """Base class: a problem in the user's input, configuration or request."""


class SpecError(MlsloError):
    """The SLO spec is malformed: names the file, the YAML path and the fix."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file = file
        self.path = path
        self.line = line
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "spec"
        if self.line is not None:
            where += f":{self.line}"
        if self.path:
            where += f": {self.path}"
        return f"{where}: {self.detail}"


class DataError(MlsloError):
    """The records are unusable: names the source, column and (if known) the row."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.source = source
        self.column = column
        self.row = row
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.source or "data"]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return f"{', '.join(parts)}: {self.detail}"


class SourceError(MlsloError):
    """An SLO's external source (Prometheus) could not be read: unreachable, too slow, or
    it refused a query. Names the spec path of the source and the fix."""

    def __init__(self, slo: str, where: str, message: str) -> None:
        self.slo = slo
        self.where = where
        self.detail = message
        super().__init__(f"{where}: {message}")


class UsageError(MlsloError):
    """An argument is wrong (a malformed moment, an unknown policy, ...).

    ``parameter`` names the argument by its library name (``at``, ``policy``,
    ``candidate``): the CLI shows it as its option (``--at``), the API as the query field.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        self.detail = message
        super().__init__(message if parameter is None else f"{parameter}: {message}")


class NotFoundError(UsageError):
    """A named thing (token, override, SLO) does not exist."""
