# Global nbgrader configuration of the hub, read by every user's nbgrader (students' fetch and
# submit, the instructor's release, collect and release_feedback). Install it where all users'
# Jupyter finds it: a folder on JUPYTER_CONFIG_PATH (deploy/hub/jupyterhub_config.py sets it for
# every server) or /etc/jupyter/nbgrader_config.py. nbgrader's multi-course layout: the exchange
# has one folder per course, and the hub's groups say who is in which course.
import os

from nbgrader.auth import JupyterHubAuthPlugin

c = get_config()  # noqa: F821  (provided by nbgrader when it reads this file)
c.Exchange.root = os.environ.get("BNHUB_EXCHANGE", "/srv/nbgrader/exchange")
c.Exchange.path_includes_course = True
c.Authenticator.plugin_class = JupyterHubAuthPlugin
