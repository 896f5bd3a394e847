"""Dashboard pages: importing a contact file (upload, preview with its column mapping,
confirm or discard, live progress, result with the rejected rows to download).

contacts.jobs does the work, as for the admin's import pages: the file is saved, checked
after the upload's commit (never in its write transaction), and imported by a worker.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from audit.models import AuditEvent
from contacts import jobs
from contacts.admin import ImportUploadForm
from contacts.importing import ATTRIBUTE, IGNORE
from contacts.models import Group, ImportJob, Tag
from contacts.uploads import capped_uploads
from dashboard.access import can_see_contacts, can_see_imports

S = ImportJob.Status
ACTIVE = (S.UPLOADED, S.VALIDATING, S.QUEUED, S.RUNNING)
#: What a column of a contact file may be read as, on the preview.
CONTACT_TARGETS = [
    ("phone", "Phone number"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("email", "E-mail"),
    ("language", "Language"),
    ("timezone", "Time zone"),
    (ATTRIBUTE, "Custom attribute (its column name)"),
    (IGNORE, "Ignore this column"),
]
OPT_OUT_TARGETS = [
    ("phone", "Phone number"),
    ("channel", "Channel"),
    ("source", "Source"),
    ("note", "Note"),
    (IGNORE, "Ignore this column"),
]


def _check_importer(request: HttpRequest, job: ImportJob | None = None) -> None:
    user = request.user
    allowed = user.has_perm("contacts.add_importjob") if job is None else jobs.may_act(user, job)
    if not (can_see_contacts(user) and allowed):
        raise PermissionDenied


def _viewable_job(request: HttpRequest, pk: int) -> ImportJob:
    if not (can_see_contacts(request.user) and can_see_imports(request.user)):
        raise PermissionDenied
    return get_object_or_404(ImportJob, pk=pk)


@login_required
def import_upload(request: HttpRequest) -> HttpResponse:
    _check_importer(request)
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            job = form.save(commit=False)
            job.save_upload(form.cleaned_data["file"], by=request.user)
            form.save_m2m()
            for name in form.names(form.cleaned_data["new_groups"]):
                job.groups.add(Group.objects.get_or_create(name=name)[0])
            for name in form.names(form.cleaned_data["new_tags"]):
                job.tags.add(Tag.objects.get_or_create(name=name)[0])
            # After the commit: a check inside this transaction would hold the write lock.
            transaction.on_commit(lambda: jobs.start_check(job))
        return redirect("dashboard:import_job", job.pk)
    context = {"title": "Import contacts", "nav": "contacts", "form": form}
    return render(request, "dashboard/import_upload.html", context)


class MappingForm(forms.Form):
    """One choice per column of the file: which field it fills, or attribute, or nothing."""

    def __init__(self, job: ImportJob, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.columns = job.preview.get("columns") or [
            {"column": name, "target": job.column_mapping.get(str(i), IGNORE)}
            for i, name in enumerate(job.header)
        ]
        targets = OPT_OUT_TARGETS if job.kind == ImportJob.Kind.OPT_OUTS else CONTACT_TARGETS
        for i, column in enumerate(self.columns):
            self.fields[f"column_{i}"] = forms.ChoiceField(
                label=column["column"] or f"Column {i + 1} (no name)",
                choices=targets,
                initial=column.get("target", IGNORE),
            )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        chosen = [cleaned.get(f"column_{i}") for i in range(len(self.columns))]
        fields = [c for c in chosen if c and c not in (ATTRIBUTE, IGNORE)]
        if "phone" not in fields:
            raise forms.ValidationError("Choose the column that holds the phone numbers.")
        twice = sorted({c for c in fields if fields.count(c) > 1})
        if twice:
            names = ", ".join(t.replace("_", " ") for t in twice)
            raise forms.ValidationError(f"Each field can come from one column only: {names}.")
        return cleaned

    def mapping(self) -> dict[str, str]:
        return {str(i): self.cleaned_data[f"column_{i}"] for i in range(len(self.columns))}

    def rows(self) -> list[tuple[Any, dict[str, str]]]:
        return [(self[f"column_{i}"], c) for i, c in enumerate(self.columns)]


@login_required
def import_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = _viewable_job(request, pk)
    return _job_page(request, job, MappingForm(job))


def _job_page(request: HttpRequest, job: ImportJob, mapping_form: MappingForm) -> HttpResponse:
    preview = job.preview or {}
    counts = preview.get("counts", {})
    errors = preview.get("errors", [])
    context = {
        "title": f"Import of {job.original_name}",
        "nav": "contacts",
        "job": job,
        "opt_outs": job.kind == ImportJob.Kind.OPT_OUTS,
        "active": job.status in ACTIVE,
        "may_act": jobs.may_act(request.user, job),
        "may_remap": jobs.may_remap(job) and bool(mapping_form.columns),
        "may_discard": jobs.may_discard(job) and request.user.has_perm("contacts.delete_importjob"),
        "counts": counts,
        "errors": errors,
        "more_errors": counts.get("invalid", 0) > len(errors),
        "mapping_form": mapping_form,
        "group_names": ", ".join(job.groups.values_list("name", flat=True)) or "none",
        "tag_names": ", ".join(job.tags.values_list("name", flat=True)) or "none",
    }
    return render(request, "dashboard/import_job.html", context)


@login_required
def import_progress(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(jobs.progress_of(_viewable_job(request, pk)))


@login_required
@require_POST
def import_mapping(request: HttpRequest, pk: int) -> HttpResponse:
    """Read the columns as chosen and check the file again: a new preview."""
    job = get_object_or_404(ImportJob, pk=pk)
    _check_importer(request, job)
    form = MappingForm(job, request.POST)
    if not form.is_valid():
        return _job_page(request, job, form)
    if jobs.remap(job, form.mapping()):
        messages.success(request, "Columns changed: the file is being checked again.")
    else:
        messages.error(request, f"The import is {job.get_status_display().lower()}: too late.")
    return redirect("dashboard:import_job", job.pk)


@login_required
@require_POST
def import_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob, pk=pk)
    _check_importer(request, job)
    if jobs.confirm(job):
        messages.success(request, "Import confirmed: it runs now, and this page follows it.")
    else:
        messages.error(
            request, f"Cannot confirm an import that is {job.get_status_display().lower()}."
        )
    return redirect("dashboard:import_job", job.pk)


@login_required
@require_POST
def import_discard(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete the job and its file: nothing of it was imported."""
    job = get_object_or_404(ImportJob, pk=pk)
    _check_importer(request, job)
    if not request.user.has_perm("contacts.delete_importjob"):
        raise PermissionDenied
    if jobs.discard(job):
        messages.success(request, f"Import of {job.original_name} discarded: nothing was imported.")
        return redirect("dashboard:contacts")
    job.refresh_from_db()
    messages.error(request, f"Cannot discard an import that is {job.get_status_display().lower()}.")
    return redirect("dashboard:import_job", job.pk)


@login_required
def import_errors(request: HttpRequest, pk: int) -> FileResponse:
    """The rejected rows as CSV: each row as it was in the file, and why."""
    job = _viewable_job(request, pk)
    if not job.error_report:
        raise Http404
    AuditEvent.record(
        AuditEvent.Action.EXPORT,
        actor=request.user,
        obj=job,
        detail={"export": "rejected import rows"},
    )
    filename = f"rejected-rows-{job.pk}.csv"
    return FileResponse(job.error_report.open("rb"), as_attachment=True, filename=filename)


urlpatterns = [
    path("contacts/import/", capped_uploads(import_upload), name="import_upload"),
    path("contacts/imports/<int:pk>/", import_job, name="import_job"),
    path("contacts/imports/<int:pk>/progress/", import_progress, name="import_progress"),
    path("contacts/imports/<int:pk>/mapping/", import_mapping, name="import_mapping"),
    path("contacts/imports/<int:pk>/confirm/", import_confirm, name="import_confirm"),
    path("contacts/imports/<int:pk>/discard/", import_discard, name="import_discard"),
    path("contacts/imports/<int:pk>/errors.csv", import_errors, name="import_errors"),
]
