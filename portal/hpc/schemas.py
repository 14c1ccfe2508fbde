"""Bodies of the HPC routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema

from daaas.portal.api.schema import MAX_ID, Body, Query, Reply, Timestamp

#: Text without control characters (a NUL could not even be stored on PostgreSQL).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
#: The largest number a template parameter may be (its text goes into a job script).
PARAMETER_NUMBER = 10**15


def _plain(value: object) -> str:
    """Return a template parameter as text; raise ValueError unless it is text or a number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be text or a number")
    if not isinstance(value, str) and not -PARAMETER_NUMBER <= value <= PARAMETER_NUMBER:
        raise ValueError(f"must be a number from -{PARAMETER_NUMBER} to {PARAMETER_NUMBER}")
    return str(value)


Parameter = Annotated[str, BeforeValidator(_plain), Field(max_length=4096),
                      WithJsonSchema({"type": ["string", "number"], "maxLength": 4096,
                                      "minimum": -PARAMETER_NUMBER,
                                      "maximum": PARAMETER_NUMBER})]


class OfferQuery(Query):
    """Whose jobs the offer is for."""

    machine: str = Field("", max_length=64, description="The session jobs would come from.")


class JobListQuery(Query):
    """Which of the user's jobs to list."""

    machine: str = Field("", max_length=64, description="Only jobs from this session.")
    experiment: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="Only jobs of this experiment (its id).")


class JobSubmission(Body):
    """A job to submit: a batch ``script``, or a ``template`` with its ``parameters``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"script": "#!/bin/bash\nhostname\n", "partition": "debug"},
        {"template": "list-data", "parameters": {"folder": "/data"}}]})

    script: str = Field("", max_length=1_000_000, description="A batch script starting with #!.")
    template: str = Field("", max_length=64, pattern=PRINTABLE,
                          description="A job template's name (instead of a script).")
    parameters: dict[str, Parameter] = Field({}, max_length=100)
    name: str = Field("", max_length=200, pattern=PRINTABLE)
    partition: str = Field("", max_length=64, pattern=PRINTABLE)
    time_limit_minutes: int | None = Field(None, ge=1, le=525600)
    cpus: int | None = Field(None, ge=1, le=1024)
    machine_id: str = Field("", max_length=64, description="The session the job comes from.")


class JobLinks(Reply):
    """The job's page and its output."""

    page: str
    output: str


class Job(Reply):
    """A job of the user's, submitted here (``origin`` portal) or elsewhere (cluster)."""

    id: int = Field(description="Slurm's job id on the cluster.")
    cluster: str
    name: str
    state: str = Field(description="Slurm's job state, e.g. PENDING, RUNNING, COMPLETED, "
                                   "FAILED, CANCELLED; ENDED when Slurm has forgotten the job.")
    reason: str
    final: bool
    partition: str
    exit_code: int | None
    work_dir: str
    output_path: str
    submitted_at: Timestamp | None
    ended_at: Timestamp | None
    origin: Literal["portal", "cluster"]
    machine_id: str | None
    experiment_id: int | None
    template: str
    observed_at: Timestamp | None = Field(
        None, description="When the worker last listed the user's jobs on the cluster, which "
                          "this state is as of; null: not listed yet (the state is the one "
                          "recorded at submission or cancellation).")
    links: JobLinks


class JobList(Reply):
    """The user's jobs on the cluster."""

    cluster: str
    jobs: list[Job]
    observed_at: Timestamp | None = Field(
        None, description="When the worker last listed the user's jobs (the states are as of "
                          "then); null: not listed yet.")
    problem: str = Field("", description="Why the worker's last listing failed, if it did.")


class JobOutput(Reply):
    """The end of a job's output file, or (``message``) why it cannot be shown."""

    path: str
    available: bool
    text: str
    truncated: bool
    message: str


class TemplateParameter(Reply):
    """One parameter of a job template, with its default for this user and machine."""

    name: str
    label: str
    help: str
    default: str
    pattern: str


class JobTemplate(Reply):
    """A job template on offer."""

    name: str
    title: str
    description: str
    parameters: list[TemplateParameter]


class OfferMachine(Reply):
    """The machine jobs would come from."""

    id: str
    environment: str
    experiment_id: int | None
    experiment_data_path: str


class HpcOffer(Reply):
    """Whether a cluster is configured, and what the user may submit."""

    configured: bool
    cluster: str
    message: str
    machine: OfferMachine | None
    partitions: list[str] = Field(description="Offered partitions; empty: any.")
    templates: list[JobTemplate]


REQUESTS = (JobSubmission,)
REPLIES = (Job, JobList, JobOutput, HpcOffer)
