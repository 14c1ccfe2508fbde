"""HPC job submission: the backend seam, Slurm through slurmrestd, jobs pages and API, and what
an analysis machine needs to be a Slurm submit host (settings in user-data, a per-user JWT
through the bootstrap exchange)."""
