"""Entry point the Azure Functions host indexes: builds the app and registers blueprints."""

import azure.functions as func

from uploadsession.graph_http import bp as graph_bp
from uploadsession.health import bp as health_bp
from uploadsession.http import bp as http_bp
from uploadsession.timers import bp as timer_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(http_bp)
app.register_functions(graph_bp)
app.register_functions(timer_bp)
app.register_functions(health_bp)
