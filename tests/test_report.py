"""What ``%greenroom`` shows, without a kernel: tables in HTML, the same facts as text, everything escaped."""

from __future__ import annotations

import re

from greenroom.report import (
    Report,
    connection_section,
    functions_section,
    notebooks_section,
    tasks_section,
    workers_section,
)

STATUS = {
    "mode": "fresh",
    "you": {"client_type": "kernel", "client_id": "k-1", "owner": False},
    "serving": {
        "generation": 7,
        "pid": 4242,
        "notebooks": ["a.server.ipynb", "b.server.ipynb"],
        "functions": ["f"],
        "load_errors": [
            {"notebook": "b.server.ipynb", "cell": 2, "line": 3, "type": "SyntaxError", "message": "bad <b>x</b>"}
        ],
        "older_versions": ["b.server.ipynb"],
        "idle_workers": 2,
        "busy_workers": 1,
    },
    "rejected_reload_errors": [],
    "sessions": 3,
    "calls_in_flight": 1,
}
FUNCTIONS = [{"name": "f", "signature": "(x, /, *, y=…)", "doc": "Uses <script>alert(1)</script>.", "notebook": "a"}]


def full_report() -> Report:
    return Report(
        [
            connection_section("connected to http://127.0.0.1:1/ (the kernel's environment)", STATUS),
            functions_section(FUNCTIONS),
            notebooks_section(STATUS),
            workers_section(STATUS),
        ]
    )


def test_the_html_form_is_tables_with_every_host_value_escaped():
    page = re.sub(r' style="[^"]*"', "", full_report()._repr_html_())
    assert page.count("<table>") == 4
    assert "<th>function</th><th>description</th><th>notebook</th>" in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page and 'class="greenroom-problem">SyntaxError in cell 2, line 3: bad &lt;b&gt;' in page


def test_the_text_form_says_the_same_without_internals():
    text = repr(full_report())
    assert "you are kernel k-1: a caller (may call)" in text
    assert "  f(x, /, *, y=…)  - Uses <script>alert(1)</script>.  [a]" in text
    assert "b.server.ipynb serves its last good version; the saved version fails: SyntaxError in cell 2, line 3" in text
    assert "workers: 1 busy, 2 idle; calls in flight: 1; sessions: 3" in text
    for internal in ("4242", "generation", "pid"):
        assert internal not in text and internal not in full_report()._repr_html_()


def test_empty_sections_say_so():
    empty = {"mode": "fresh", "serving": None}
    report = Report([functions_section([]), notebooks_section(empty)])
    assert repr(report).splitlines() == [
        "no server functions are loaded",
        "server notebooks: every one serves its saved version",
    ]
    assert "no server notebook is loaded" in report._repr_html_()


def test_the_tasks_table_lists_name_status_times_and_id_escaped():
    section = tasks_section([{"id": "abc", "name": "<b>fit</b>", "status": "completed", "launched": 0, "ended": 60}])
    assert section.text == [
        "background tasks:",
        "  <b>fit</b>: completed, launched 1970-01-01 00:00:00 UTC, ended 1970-01-01 00:01:00 UTC [abc]",
    ]
    assert "&lt;b&gt;fit&lt;/b&gt;" in section.html() and "<b>fit</b>" not in section.html()
    assert tasks_section([]).text == ["no background tasks you may see"]
