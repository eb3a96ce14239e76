"""The environment's monthly AWS Budget: its tagged resources' cost, alerting on the environment's topic."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_budgets as budgets
from constructs import Construct

from lambdas.common.names import ENVIRONMENT_TAG, PROJECT_TAG, ResourceNames
from stacks.constructs.alerts import Alerts

# The budget sees costs by the stage's tags once they are activated as cost allocation tags ("Activating
# user-defined cost allocation tags", AWS Billing User Guide).
# (kind, threshold %): forecast to pass 80% of the budget, then actually past it.
NOTIFICATIONS = (("FORECASTED", 80), ("ACTUAL", 100))


@dataclass(frozen=True)
class CostBudgetProps:
    names: ResourceNames
    monthly_usd: float
    alerts: Alerts


class CostBudget(Construct):
    """A monthly cost budget of the resources tagged with this project and environment."""

    def __init__(self, scope: Construct, construct_id: str, *, props: CostBudgetProps) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account
        # AWS Budgets publishes as budgets.amazonaws.com for this account's budgets ("Creating an Amazon SNS topic for
        # budget notifications", AWS Cost Management User Guide); an encrypted topic's key must let it in too.
        from_budgets = {
            "StringEquals": {"aws:SourceAccount": account},
            "ArnLike": {"aws:SourceArn": Stack.of(self).format_arn(service="budgets", region="", resource="*")},
        }
        props.alerts.let_service_publish("budgets.amazonaws.com", from_budgets)
        tag = budgets.CfnBudget.ExpressionProperty

        def tagged(key: str, value: str) -> budgets.CfnBudget.ExpressionProperty:
            return tag(tags=budgets.CfnBudget.TagValuesProperty(key=key, values=[value], match_options=["EQUALS"]))

        self.budget = budgets.CfnBudget(
            self,
            "Default",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=props.names.prefix,
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=props.monthly_usd, unit="USD"),
                filter_expression=tag(
                    and_=[tagged(PROJECT_TAG, props.names.project), tagged(ENVIRONMENT_TAG, props.names.environment)]
                ),
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type=kind,
                        comparison_operator="GREATER_THAN",
                        threshold=threshold,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[
                        budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=props.alerts.topic.topic_arn)
                    ],
                )
                for kind, threshold in NOTIFICATIONS
            ],
        )
