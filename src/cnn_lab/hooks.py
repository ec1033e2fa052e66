"""Project hooks.

Studies generate one namespaced modular pipeline per variant from their parameter grid,
so pipelines must be built from the parameters of *this* run (env and ``--params``
included). Kedro builds pipelines without parameters; this hook hands them over.
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

_run_parameters: dict[str, Any] | None = None


def run_parameters() -> dict[str, Any]:
    """Parameters of the current run; outside a Kedro session, those of conf/base+local."""
    if _run_parameters is not None:
        return _run_parameters
    from kedro.config import OmegaConfigLoader

    from cnn_lab.settings import CONFIG_LOADER_ARGS, find_project_root

    loader = OmegaConfigLoader(conf_source=str(find_project_root() / "conf"), **CONFIG_LOADER_ARGS)
    return dict(loader["parameters"])


class StudyGridHook:
    @hook_impl
    def after_context_created(self, context: Any) -> None:
        global _run_parameters
        _run_parameters = dict(context.params)
        # Rebuild pipelines from these parameters even if something listed them earlier.
        from kedro.framework.project import PACKAGE_NAME, pipelines

        pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")
