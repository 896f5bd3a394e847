"""The dashboard at `/`: one module per area of pages, each with its own urlpatterns."""

from dashboard import (
    approvals,
    builder,
    campaign_list,
    campaign_pages,
    contact_imports,
    contact_pages,
    contacts_overview,
    group_pages,
    home,
    inbox_pages,
    reports,
    segment_pages,
    token_pages,
    webhook_pages,
)

app_name = "dashboard"

urlpatterns = [
    *builder.urlpatterns,  # before campaign_pages: "campaigns/new/" is not a campaign id
    *home.urlpatterns,
    *campaign_list.urlpatterns,
    *campaign_pages.urlpatterns,
    *approvals.urlpatterns,
    *contacts_overview.urlpatterns,
    *contact_pages.urlpatterns,
    *group_pages.urlpatterns,
    *contact_imports.urlpatterns,
    *reports.urlpatterns,
    *segment_pages.urlpatterns,
    *inbox_pages.urlpatterns,
    *token_pages.urlpatterns,
    *webhook_pages.urlpatterns,
]
