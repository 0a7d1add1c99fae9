"""The whole class on this machine, for trying the course out: `make hub`, then open http://127.0.0.1:8000.

Dummy authentication (any password), every user the same OS user (SimpleLocalProcessSpawner), students
alice and bob, teacher tess.  The greenroom service serves the teacher's notebooks from a copy of this
folder in `.hub/service/` (students' servers see only their own `.hub/homes/<name>/`); each student's home
gets `lab.ipynb`, each teacher's `dashboard.ipynb`.  For a real deployment read docs/teaching.md.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.path.join(HERE, "..", "..", ".hub")
BIN = os.path.dirname(sys.executable)
SERVICE_ROOT = os.path.join(STATE, "service")
HUB_URL = "http://127.0.0.1:8000"

os.makedirs(SERVICE_ROOT, mode=0o700, exist_ok=True)
shutil.copy(os.path.join(HERE, "course.server.ipynb"), SERVICE_ROOT)

c = get_config()  # noqa: F821 - JupyterHub's config loader provides it

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = 8000
c.JupyterHub.db_url = "sqlite:///" + os.path.join(STATE, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "jupyterhub_cookie_secret")
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {"alice", "bob", "tess"}
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(STATE, "homes", "{username}")
c.Spawner.cmd = [os.path.join(BIN, "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.Spawner.default_url = "/lab"

# The greenroom service, and what lets the students' kernels reach it with their own tokens.
c.JupyterHub.services = [
    {
        "name": "greenroom",
        "url": "http://127.0.0.1:8765",
        "command": [os.path.join(BIN, "greenroom"), "host", SERVICE_ROOT],
    }
]
c.JupyterHub.load_groups = {"students": {"users": ["alice", "bob"]}, "teachers": {"users": ["tess"]}}
c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "access:services!service=greenroom"]}]
c.Spawner.server_token_scopes = [
    "users:activity!user",
    "access:servers!server",
    "access:services!service=greenroom",
]
c.Spawner.environment = {"GREENROOM_URL": HUB_URL + "/services/greenroom/"}


def give_notebooks(spawner):
    """Students get the lab, teachers the dashboard (never the server notebook)."""
    home = spawner.home_dir_template.format(username=spawner.user.name)
    os.makedirs(home, exist_ok=True)
    teacher = any(group.name == "teachers" for group in spawner.user.groups)
    name = "dashboard.ipynb" if teacher else "lab.ipynb"
    shutil.copy(os.path.join(HERE, name), home)


c.Spawner.pre_spawn_hook = give_notebooks
