"""The example apps in notebooks/, run in real kernels against a real server."""

from __future__ import annotations

import os
import shutil

import nbformat
import pytest

from helpers import KernelError, KernelRunner

NOTEBOOKS = os.path.join(os.path.dirname(__file__), "..", "notebooks")


@pytest.fixture
def server_files(jp_root_dir):
    shutil.copytree(NOTEBOOKS, jp_root_dir, dirs_exist_ok=True)
    return jp_root_dir


async def run_notebook(kernel: KernelRunner, path: str) -> str:
    document = nbformat.read(path, as_version=4)
    output = []
    for cell in document.cells:
        if cell.cell_type == "code" and "greenroom:skip" not in cell.metadata.get("tags", []):
            output.append(await kernel.run(cell.source))
    return "".join(output)


async def test_guess(start_kernel, host):
    kernel = await start_kernel("guess")
    await run_notebook(kernel, os.path.join(host.root, "guess", "app.ipynb"))
    out = await kernel.run(
        "form = GuessForm()\nfor n in (10, 90, 42):\n    form.number.value = n\n    form.go.click()\n    print(form.answer.value)"
    )
    assert out.split() == ["Too", "low!", "Too", "high!", "Correct!"]
    overview = (await kernel.run("%greenroom")).splitlines()
    assert overview[0].startswith("connected to ") and overview[1].startswith("you are kernel ")
    shown = "\n".join(overview[2:])  # the port and the kernel id above may hold any digits
    assert "guess(number)" in shown and "42" not in shown


async def test_pages_share_the_global_module(start_kernel, host):
    kernel = await start_kernel("pages")
    await run_notebook(kernel, os.path.join(host.root, "pages", "app.ipynb"))
    out = await kernel.run(
        "one = PAGES['page one']()\none.button.click()\none.button.click()\n"
        "one.link.click()\nfrom greenroom.widgets import get_open_form\nprint(get_open_form().count.value)"
    )
    assert out.strip() == "Clicks so far: 2"


async def test_quiz_keeps_the_answer_key_on_the_server(start_kernel, host):
    kernel = await start_kernel("quiz")
    seen = await run_notebook(kernel, os.path.join(host.root, "quiz", "app.ipynb"))
    seen += await kernel.run(
        "q = Question({'id': 'prime', 'text': '?'})\nq.answer.value = '97'\nq.check.click()\nprint(q.feedback.value)\n"
        "q.answer.value = '91'\nq.check.click()\nprint(q.feedback.value)\n"
        "print(server.call('questions'))\n%greenroom"
    )
    assert "Correct! Score: 1/3" in seen and "Not yet. Score: 1/3" in seen
    for answer in ("canberra", "ANSWER_KEY", "== ANSWER_KEY"):
        assert answer not in seen
    table = await kernel.run("print(type(server.call('progress')).__name__, progress.value.count('<tr>'))")
    assert table.split() == ["DataFrame", "4"]  # a header row and one row per question


async def test_predictions_are_scored_against_hidden_labels(start_kernel, host):
    kernel = await start_kernel("quiz")
    seen = await run_notebook(kernel, os.path.join(host.root, "quiz", "predict.ipynb"))
    assert "((200, 2), dtype('float64'))" in seen and "'accuracy': 1.0" in seen
    assert "_TEST_LABELS" not in seen
    with pytest.raises(KernelError, match="send 200 predictions as a numpy array"):
        await kernel.run("server.call('score_predictions', predictions[:5])")


async def test_errors_in_handlers_are_shown_in_the_form(start_kernel, host):
    kernel = await start_kernel("quiz")
    await run_notebook(kernel, os.path.join(host.root, "quiz", "app.ipynb"))
    out = await kernel.run(
        "q = Question({'id': 'nope', 'text': '?'})\nq.check.click()\nprint(q._error.value)\nprint(q._error.layout.display)"
    )
    assert "ValueError: unknown question &#x27;nope&#x27;" in out and "None" in out


async def test_tutorial_runs(start_kernel, host):
    kernel = await start_kernel("")
    out = await run_notebook(kernel, os.path.join(host.root, "tutorial.ipynb"))
    assert "'Too high!'" in out and "args[0]['tags']: set" in out and "guess(number)" in out


async def test_the_epidemic_runs_in_the_background_and_ends_with_its_plot(start_kernel, host):
    kernel = await start_kernel("epidemic")
    await run_notebook(kernel, os.path.join(host.root, "epidemic", "app.ipynb"))
    shown = await kernel.run(
        "form = Simulation()\nform.population.value, form.runs.value = 2000, 20\nform.run.click()\n"
        "progress = form.progress.children[0]\nprint(type(progress).__name__, server.call('start_simulation', "
        "population=500, runs=1).get_task_name())"
    )
    assert shown.split() == ["TaskProgress", "simulate"]  # the kernel calls on while the task runs
    shown = await kernel.run(
        "plot = progress.task.wait(120)\nprint(plot.content_type, progress.bar.value, progress.bar.bar_style, "
        "'median peak' in progress.status.value, type(progress.outcome.children[0]).__name__)"
    )
    assert shown.split() == ["image/png", "1.0", "success", "True", "Image"]
    refused = await kernel.run("form.population.value = -5\nform.run.click()\nprint(form._error.value)")
    assert "population must be a whole number from 100 to 1,000,000" in refused
