"""django-q2 tasks for contact imports: load the job by id, call one function."""

from contacts import jobs
from contacts.models import ImportJob


def check_import(job_id: int) -> None:
    jobs.check(ImportJob.objects.get(pk=job_id))


def run_import(job_id: int) -> None:
    jobs.run(ImportJob.objects.get(pk=job_id))
