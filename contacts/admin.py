from typing import Any

import phonenumbers
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, re_path
from django.utils.functional import cached_property
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, XLSX

from audit.models import AuditEvent
from contacts import jobs
from contacts.erasure import erase
from contacts.jobs import may_act, progress_of
from contacts.memberships import members_condition
from contacts.models import Channel, Contact, Group, ImportJob, OptOut, Tag
from contacts.phones import redact
from contacts.resources import ContactResource, OptOutResource
from contacts.search import search_contacts
from contacts.uploads import capped_uploads, refuse_oversized
from contacts.workbooks import megabytes

#: Erasure reads the message table once per run (it has no index on phone): a few at a time.
ERASE_AT_ONCE = 100
ACTIVE_STATUSES = (
    ImportJob.Status.UPLOADED,
    ImportJob.Status.VALIDATING,
    ImportJob.Status.QUEUED,
    ImportJob.Status.RUNNING,
)


class AuditedExportMixin(ExportMixin):
    """import-export's admin export, with an audit record of who took which file."""

    def get_export_data(self, file_format: Any, request: Any, queryset: Any, **kwargs: Any) -> Any:
        data = super().get_export_data(file_format, request, queryset, **kwargs)
        AuditEvent.record(
            AuditEvent.Action.EXPORT,
            actor=request.user,
            detail={
                "export": str(self.model._meta.verbose_name_plural),
                "format": file_format.get_title(),
            },
        )
        return data


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Group]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, group: Any) -> int:
        return group.contact_count


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "contact_count")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tag]:
        return super().get_queryset(request).annotate(contact_count=Count("contacts"))

    @admin.display(description="contacts", ordering="contact_count")
    def contact_count(self, tag: Any) -> int:
        return tag.contact_count


class MembershipFilter(admin.SimpleListFilter):
    """Contacts in one group (or with one tag): memberships.members_condition finds them."""

    through: Any
    column: str
    model: Any

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(pk), name) for pk, name in self.model.objects.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Contact]) -> QuerySet[Contact]:
        chosen = self.value()
        if not chosen:
            return queryset
        return queryset.filter(members_condition(self.through, self.column, chosen))


class GroupFilter(MembershipFilter):
    title = "group"
    parameter_name = "group"
    through, column, model = Contact.groups.through, "group_id", Group


class TagFilter(MembershipFilter):
    title = "tag"
    parameter_name = "tag"
    through, column, model = Contact.tags.through, "tag_id", Tag


class CappedCountPaginator(Paginator):
    """Counts at most CAP rows: a changelist over a million contacts needs no exact total."""

    CAP = 10_000

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list
        return len(rows.values_list("pk", flat=True)[: self.CAP + 1])


@admin.register(Contact)
class ContactAdmin(AuditedExportMixin, admin.ModelAdmin):
    resource_classes = [ContactResource]
    formats = [CSV, XLSX]
    list_display = (
        "phone",
        "country",
        "first_name",
        "last_name",
        "email",
        "opted_out",
        "created_at",
    )
    list_filter = (GroupFilter, TagFilter)
    search_fields = ("phone", "first_name", "last_name", "email")
    search_help_text = "A phone number in any format, or the start of a name or an e-mail."
    filter_horizontal = ("groups", "tags")
    readonly_fields = ("country", "created_at", "updated_at", "opt_outs")
    paginator = CappedCountPaginator
    show_full_result_count = False
    change_list_template = "admin/contacts/contact/change_list.html"
    actions = ("erase_contacts",)
    fieldsets = (
        (None, {"fields": ("phone", "country", "first_name", "last_name", "email", "opt_outs")}),
        ("Groups and tags", {"fields": ("groups", "tags")}),
        ("Details", {"fields": ("language", "timezone", "attributes")}),
        ("Consent", {"fields": ("consent_source", "consent_at", "created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contact]:
        suppressed = OptOut.objects.filter(phone=OuterRef("phone"))
        return super().get_queryset(request).annotate(is_opted_out=Exists(suppressed))

    @admin.display(description="opted out", boolean=True)
    def opted_out(self, contact: Any) -> bool:
        return contact.is_opted_out

    @admin.display(description="opted out of")
    def opt_outs(self, contact: Contact) -> str:
        channels = OptOut.objects.filter(phone=contact.phone).values_list("channel", flat=True)
        labels = [Channel(c).label for c in channels]
        return ", ".join(labels) or "nothing: may be messaged"

    @admin.action(description="Erase selected contacts for good (GDPR)", permissions=("delete",))
    def erase_contacts(
        self, request: HttpRequest, queryset: QuerySet[Contact]
    ) -> TemplateResponse | None:
        """Asks first (like the admin's delete), then erases them and every copy of their number."""
        chosen = list(queryset.order_by("pk")[: ERASE_AT_ONCE + 1])
        if len(chosen) > ERASE_AT_ONCE:
            self.message_user(
                request, f"Erase at most {ERASE_AT_ONCE} contacts at a time.", messages.ERROR
            )
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase contacts for good?",
                "opts": self.model._meta,
                "contacts": [(c.pk, redact(c.phone)) for c in chosen],
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/contacts/contact/erase_confirmation.html", context
            )
        changed = erase(contact_ids=[c.pk for c in chosen])
        figures = ", ".join(f"{n} {kind}" for kind, n in sorted(changed.items()))
        self.message_user(request, f"Erased {len(chosen)} contact(s): {figures}.", messages.SUCCESS)
        return None

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Contact], search_term: str
    ) -> tuple[QuerySet[Contact], bool]:
        """Indexed lookups only: a number in any format, or the start of a name or e-mail."""
        return search_contacts(queryset, search_term), False


@admin.register(OptOut)
class OptOutAdmin(AuditedExportMixin, admin.ModelAdmin):
    """Exports are import-export's; imports are ImportJobs of their own kind (streamed,
    limited, checked by a worker when large), started from `import_view`."""

    resource_classes = [OptOutResource]
    formats = [CSV, XLSX]
    list_display = ("phone", "channel", "source", "note", "created_at")
    list_filter = ("channel", "source")
    search_fields = ("=phone",)
    readonly_fields = ("created_at",)
    show_full_result_count = False
    change_list_template = "admin/contacts/optout/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(capped_uploads(self.import_view))
        return [path("import/", view, name="contacts_optout_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        # An opt-out upload is an import job too: both permissions, as for confirming it.
        if not (
            self.has_add_permission(request) and request.user.has_perm("contacts.add_importjob")
        ):
            raise PermissionDenied
        form = OptOutUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                job = form.save(commit=False)
                job.kind = ImportJob.Kind.OPT_OUTS
                job.save_upload(form.cleaned_data["file"], by=request.user)
                transaction.on_commit(lambda: jobs.start_check(job))
            return redirect("admin:contacts_importjob_change", job.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import opt-outs",
        }
        return TemplateResponse(request, "admin/contacts/optout/import.html", context)


# Contact and opt-out imports.


class OptOutUploadForm(forms.ModelForm):
    class Meta:
        model = ImportJob
        fields = ("file", "channel", "region")
        labels = {"channel": "Channel of rows that name none"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].required = True
        self.fields["file"].help_text = (
            "CSV or XLSX with a phone column and a channel column (sms or whatsapp); source "
            "and note columns are kept too. Numbers already on the list stay as they are. "
            + upload_limit_text("import_opt_outs")
        )
        channel = self.fields["channel"]
        assert isinstance(channel, forms.ChoiceField)
        channel.choices = [("", "none: refuse such rows"), *Channel.choices]
        self.fields["channel"].help_text = ""
        self.fields["region"].initial = settings.HERALD_DEFAULT_REGION

    def clean_region(self) -> str:
        return clean_region(self.cleaned_data["region"])

    def clean_file(self) -> Any:
        return clean_upload(self.cleaned_data["file"])


def clean_region(typed: str) -> str:
    region = typed.strip().upper()
    if phonenumbers.country_code_for_region(region) == 0:
        raise forms.ValidationError("Give a two-letter country code, e.g. GB or FR.")
    return region


def upload_limit_text(command: str) -> str:
    limit = megabytes(settings.HERALD_IMPORT_MAX_UPLOAD_BYTES)
    return f"At most {limit}; a bigger file goes through the shell: manage.py {command}."


def clean_upload(upload: Any) -> Any:
    refuse_oversized(upload)
    if upload and upload.size == 0:
        raise forms.ValidationError("The file is empty.")
    return upload


class ImportUploadForm(forms.ModelForm):
    new_groups = forms.CharField(
        required=False, help_text="Comma-separated names of groups to create and add to."
    )
    new_tags = forms.CharField(required=False, help_text="Comma-separated names of new tags.")

    class Meta:
        model = ImportJob
        fields = ("file", "groups", "tags", "region")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["file"].required = True
        self.fields["file"].help_text = (
            "CSV (any delimiter, UTF-8 or Windows encodings) or XLSX. A phone column is needed "
            "(phone, mobile or number); first_name, last_name and email are recognised; every "
            "other column becomes an attribute usable as {{column}} in messages. "
            + upload_limit_text("import_contacts")
        )
        self.fields["region"].initial = settings.HERALD_DEFAULT_REGION

    def clean_region(self) -> str:
        return clean_region(self.cleaned_data["region"])

    def clean_file(self) -> Any:
        return clean_upload(self.cleaned_data["file"])

    @staticmethod
    def names(text: str) -> list[str]:
        return [name.strip() for name in text.split(",") if name.strip()]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    form = ImportUploadForm
    list_display = (
        "original_name",
        "kind",
        "status",
        "origin",
        "imported",
        "updated",
        "invalid",
        "created_at",
    )
    list_filter = ("kind", "status", "origin")
    filter_horizontal = ("groups", "tags")
    change_form_template = "admin/contacts/importjob/change_form.html"
    add_form_template = "admin/change_form.html"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a job is driven by its buttons, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        busy = obj is not None and obj.status in ACTIVE_STATUSES
        return super().has_delete_permission(request, obj) and not busy

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.save_upload(form.cleaned_data["file"], by=request.user)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        job = form.instance
        for name in form.names(form.cleaned_data["new_groups"]):
            job.groups.add(Group.objects.get_or_create(name=name)[0])
        for name in form.names(form.cleaned_data["new_tags"]):
            job.tags.add(Tag.objects.get_or_create(name=name)[0])
        # After the commit: a check inside the admin's transaction would hold SQLite's
        # write lock (sign-ins, webhooks) for as long as it ran.
        transaction.on_commit(lambda: jobs.start_check(job))

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: Any = None
    ) -> HttpResponse:
        return redirect("admin:contacts_importjob_change", obj.pk)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        own = [
            path("add/", view(capped_uploads(self.add_view)), name="contacts_importjob_add"),
            path(
                "<int:pk>/progress/", view(self.progress_view), name="contacts_importjob_progress"
            ),
            path("<int:pk>/errors.csv", view(self.errors_view), name="contacts_importjob_errors"),
            re_path(
                r"^(?P<pk>\d+)/(?P<action>confirm|resume|rollback)/$",
                view(self.action_view),
                name="contacts_importjob_action",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        opt_outs = job.kind == ImportJob.Kind.OPT_OUTS
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "job": job,
            "opt_outs": opt_outs,
            "title": f"Import of {'opt-outs' if opt_outs else 'contacts'} from {job.original_name}",
            "may_act": may_act(request.user, job),
            "active": job.status in ACTIVE_STATUSES,
            "group_names": ", ".join(job.groups.values_list("name", flat=True)) or "none",
            "tag_names": ", ".join(job.tags.values_list("name", flat=True)) or "none",
        }
        return TemplateResponse(request, self.change_form_template, context)

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        job = get_object_or_404(ImportJob, pk=pk)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return JsonResponse(progress_of(job))

    def errors_view(self, request: HttpRequest, pk: int) -> FileResponse:
        job = get_object_or_404(ImportJob, pk=pk)
        if not self.has_view_permission(request, job) or not job.error_report:
            raise Http404
        filename = f"rejected-rows-{job.pk}.csv"
        AuditEvent.record(
            AuditEvent.Action.EXPORT,
            actor=request.user,
            obj=job,
            detail={"export": "rejected import rows"},
        )
        return FileResponse(job.error_report.open("rb"), as_attachment=True, filename=filename)

    def action_view(self, request: HttpRequest, pk: str, action: str) -> HttpResponse:
        job = get_object_or_404(ImportJob, pk=pk)
        if request.method != "POST" or not may_act(request.user, job):
            raise PermissionDenied
        act = {"confirm": jobs.confirm, "resume": jobs.resume, "rollback": jobs.roll_back}.get(
            action
        )
        if act is None:
            raise Http404
        if action == "rollback" and not job.may_roll_back:
            self.message_user(
                request,
                "An opt-out import is never rolled back: a STOP that came in since would go "
                "with it. Delete entries from the opt-out list instead.",
                messages.ERROR,
            )
        elif act(job):
            resumed = (
                "Import queued to resume." if job.was_confirmed() else "Checking the file again."
            )
            done = {"confirm": "Import queued.", "resume": resumed}
            self.message_user(request, done.get(action, "Import rolled back."), messages.SUCCESS)
        else:
            job.refresh_from_db()
            self.message_user(
                request,
                f"Cannot {action} an import that is {job.get_status_display().lower()}.",
                messages.ERROR,
            )
        return redirect("admin:contacts_importjob_change", job.pk)
