"""What ``%greenroom`` shows: the host's answers as small tables, HTML in a notebook and text in a terminal.

A :class:`Report` is a display object made of :class:`Section`\\ s built from the host's ``functions`` and
``status`` replies: ``_repr_html_`` renders each section as a titled table, and ``repr`` is the same content
as plain lines, so a terminal (or any text-only frontend) prints it.  Invariant: every value that came from
the host (names, docstrings, error messages written in server notebooks) is HTML-escaped, and nothing of
the host's internals (process ids, generation numbers) is shown; ``%greenroom status --json`` has those.
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Report",
    "Section",
    "connection_section",
    "functions_section",
    "notebooks_section",
    "tasks_section",
    "workers_section",
]

Row = tuple[str, ...]

# Inline styles: they survive HTML sanitizers and outrank the frontends' own table styles.
_CELL = "text-align:left;vertical-align:top;padding:2px 12px 2px 0;white-space:normal"
_KEY = _CELL + ";font-weight:600"
_PROBLEM = _CELL + ";color:#b00020"
_TITLE = "margin:8px 0 2px;font-size:1.05em;font-weight:600"


@dataclass
class Section:
    """One titled table; ``text`` is its plain-text form, line by line."""

    title: str
    columns: Row
    rows: list[Row]
    text: list[str]
    empty: str = ""  # said instead of the table when there are no rows
    problem_column: int | None = None  # this column's cells are shown as problems (in red)

    def html(self) -> str:
        title = f'<div style="{_TITLE}">{html.escape(self.title)}</div>'
        if not self.rows:
            return f"{title}<div>{html.escape(self.empty)}</div>"
        head = "".join(f'<th style="{_KEY}">{html.escape(column)}</th>' for column in self.columns)
        head = f"<thead><tr>{head}</tr></thead>" if any(self.columns) else ""
        keyed = not any(self.columns)  # a two-column key/value table: the keys in bold
        body = "".join(
            "<tr>" + "".join(self._cell(index, cell, keyed) for index, cell in enumerate(row)) + "</tr>"
            for row in self.rows
        )
        return f'{title}<table style="border-collapse:collapse;margin:0 0 6px">{head}<tbody>{body}</tbody></table>'

    def _cell(self, index: int, cell: str, keyed: bool) -> str:
        if index == self.problem_column and cell:
            style = _PROBLEM
        elif keyed and index == 0:
            style = _KEY
        else:
            style = _CELL
        marker = ' class="greenroom-problem"' if style is _PROBLEM else ""
        return f'<td{marker} style="{style}">{html.escape(cell)}</td>'


@dataclass
class Report:
    """Sections shown together: HTML tables in a notebook, plain lines in a terminal."""

    sections: list[Section] = field(default_factory=list)

    def _repr_html_(self) -> str:
        return f'<div class="greenroom-report">{"".join(section.html() for section in self.sections)}</div>'

    def __repr__(self) -> str:
        return "\n".join(line for section in self.sections for line in section.text)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def connection_section(where: str, status: dict[str, Any] | None) -> Section:
    """Where the client is connected, as whom, and the host's mode."""
    rows: list[Row] = [("host", where)]
    text = [where]
    if status is not None:
        you = status.get("you") or {}
        if you:
            kind = you.get("client_type", "")
            identity = f"{kind} {you.get('client_id', '')}".strip()
            rights = "the server's owner (may force a reload)" if you.get("owner") else "a caller (may call)"
            rows.append(("you", f"{identity}: {rights}"))
            text.append(f"you are {identity}: {rights}")
        mode = status.get("mode", "")
        meaning = {
            "fresh": "every call starts from the notebooks' loaded state",
            "persistent": "workers keep their globals between calls",
        }.get(mode, "")
        rows.append(("mode", f"{mode}: {meaning}" if meaning else mode))
        text.append(f"mode: {mode}" + (f" ({meaning})" if meaning else ""))
    return Section("Connection", ("", ""), rows, text)


def functions_section(functions: Sequence[dict[str, Any]]) -> Section:
    """The loaded server functions: name and signature, first docstring line, notebook (never source)."""
    rows: list[Row] = [
        (f"{function['name']}{function['signature']}", str(function.get("doc") or ""), str(function["notebook"]))
        for function in functions
    ]
    text = ["server functions:"] if rows else ["no server functions are loaded"]
    for call, doc, notebook in rows:
        text.append(f"  {call}" + (f"  - {doc}" if doc else "") + f"  [{notebook}]")
    return Section("Server functions", ("function", "description", "notebook"), rows, text, empty=text[0])


def _where(error: dict[str, Any]) -> str:
    return f"cell {error.get('cell')}, line {error.get('line')}" if error.get("cell") else "reading the file"


def _problem(error: dict[str, Any]) -> str:
    return f"{error.get('type')} in {_where(error)}: {error.get('message')}"


def notebooks_section(status: dict[str, Any]) -> Section:
    """Each server notebook and whether it serves its saved version; the why (cell, line, error) if not."""
    serving = status.get("serving") or {}
    older = set(serving.get("older_versions", []))
    failing = {error.get("notebook"): error for error in serving.get("load_errors", [])}
    rows: list[Row] = []
    attention: list[str] = []
    for notebook in sorted(set(serving.get("notebooks", [])) | set(failing)):
        error = failing.get(notebook)
        if error is None:
            rows.append((notebook, "serves its saved version", ""))
            continue
        state = (
            "serves its last good version; the saved version fails"
            if notebook in older
            else "serves nothing: it never loaded"
        )
        rows.append((notebook, state, _problem(error)))
        attention.append(f"  {notebook} {state}: {_problem(error)}")
    for error in status.get("rejected_reload_errors", []):
        state = "the last reload failed as a whole, the previous version serves"
        rows.append((str(error.get("notebook") or "(all)"), state, _problem(error)))
        attention.append(f"  {state}: {_problem(error)}")
    if attention:
        text = ["server notebooks that need attention:", *attention]
    else:
        text = ["server notebooks: every one serves its saved version"]
    empty = "no server notebook is loaded"
    return Section("Server notebooks", ("notebook", "state", "problem"), rows, text, empty=empty, problem_column=2)


def workers_section(status: dict[str, Any]) -> Section:
    """The host's load: workers, calls in flight, sessions."""
    serving = status.get("serving") or {}
    workers = f"{serving.get('busy_workers', 0)} busy, {serving.get('idle_workers', 0)} idle"
    calls, sessions = status.get("calls_in_flight", 0), status.get("sessions", 0)
    tasks = f"{status.get('tasks_running', 0)} running, {status.get('tasks_waiting', 0)} waiting"
    rows: list[Row] = [
        ("workers", workers),
        ("calls in flight", str(calls)),
        ("sessions", str(sessions)),
        ("background tasks", tasks),
    ]
    counts = f"{len(serving.get('notebooks', []))} notebook(s), {len(serving.get('functions', []))} function(s)"
    text = [f"{counts}; workers: {workers}; calls in flight: {calls}; sessions: {sessions}; background tasks: {tasks}"]
    dask = status.get("dask")
    if isinstance(dask, dict):
        serving_workers = [
            f"{worker.get('address')} ({worker.get('calls', 0)} calls now)" for worker in dask.get("workers", [])
        ]
        shown = ", ".join(serving_workers) or "none yet (the first call finds them)"
        rows.append(("Dask cluster", str(dask.get("scheduler", ""))))
        rows.append(("Dask workers serving", shown))
        text.append(f"calls run on the Dask cluster at {dask.get('scheduler', '')}: {shown}")
    return Section("Host", ("", ""), rows, text)


def _time(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def tasks_section(tasks: Sequence[dict[str, Any]]) -> Section:
    """The background tasks the caller may see, newest first: name, status, when launched and ended, id."""
    rows: list[Row] = [
        (
            str(task.get("name", "")),
            str(task.get("status", "")),
            _time(task.get("launched")),
            _time(task.get("ended")),
            str(task.get("id", "")),
        )
        for task in tasks
    ]
    text = ["background tasks:"] if rows else ["no background tasks you may see"]
    text += [
        f"  {name}: {status}, launched {launched}" + (f", ended {ended}" if ended else "") + f" [{task_id}]"
        for name, status, launched, ended, task_id in rows
    ]
    return Section("Background tasks", ("task", "status", "launched", "ended", "id"), rows, text, empty=text[0])
