"""ORM tables, one per module, re-exported so Alembic and relationships see them all."""

from app.models.chat_completion import ChatCompletionRow
from app.models.conversation import ConversationItemRow, ConversationRow
from app.models.deployment_secret import DeploymentSecretRow
from app.models.project import ApiKeyRow, ProjectRow
from app.models.response import ResponseRow
from app.models.response_event import ResponseEventRow
from app.models.response_item import ResponseItemRow
from app.models.webhook import WebhookDeliveryRow, WebhookEndpointRow

__all__ = [
    "ApiKeyRow",
    "ChatCompletionRow",
    "ConversationItemRow",
    "ConversationRow",
    "DeploymentSecretRow",
    "ProjectRow",
    "ResponseEventRow",
    "ResponseItemRow",
    "ResponseRow",
    "WebhookDeliveryRow",
    "WebhookEndpointRow",
]
