"""``kedro airflow create`` turns the depth study into an Airflow DAG with one task per
node and the pipeline's dependencies as edges (the ``airflow`` extra: kedro-airflow)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("kedro_airflow", reason="the 'airflow' extra (kedro-airflow) is not installed")


def _task_ids(tree: ast.Module) -> list[str]:
    """task_id of every ``@task(task_id=...)`` function in the generated file."""
    ids = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        for decorator in function.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", "") == "task":
                (keyword,) = [k for k in decorator.keywords if k.arg == "task_id"]
                ids.append(keyword.value.value)
    return ids


def _edges(tree: ast.Module) -> set[tuple[str, str]]:
    """``tasks["a"] >> tasks["b"]`` statements as (a, b)."""
    edges = set()
    for statement in ast.walk(tree):
        if isinstance(statement, ast.BinOp) and isinstance(statement.op, ast.RShift):
            edges.add((statement.left.slice.value, statement.right.slice.value))
    return edges


def test_airflow_dag_has_one_task_per_node(kedro_project: Path) -> None:
    from click.testing import CliRunner
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project
    from kedro_airflow.plugin import commands
    from slugify import slugify

    metadata = bootstrap_project(kedro_project)
    result = CliRunner().invoke(
        commands, ["airflow", "create", "--pipelines=cnn_depth"], obj=metadata
    )
    assert result.exit_code == 0, result.output
    dag_file = kedro_project / "airflow_dags" / "cnn_lab_cnn_depth_dag.py"
    source = dag_file.read_text()
    tree = ast.parse(source)  # valid Python

    pipeline = pipelines["cnn_depth"]  # the grid of this run's parameters: 18 variants
    ids = _task_ids(tree)
    assert sorted(ids) == sorted(slugify(n.name) for n in pipeline.nodes)
    assert len(ids) == len(pipeline.nodes) and len(set(ids)) == len(ids)
    assert "cnn-depth-mlp-resmlp-d32-train" in ids
    expected = {
        (slugify(parent.name), slugify(child.name))
        for child, parents in pipeline.node_dependencies.items()
        for parent in parents
    }
    assert _edges(tree) == expected

    if importlib.util.find_spec("airflow") is not None:  # Airflow itself: load the DAG
        try:  # Airflow 3.2 moved DagBag
            from airflow.dag_processing.dagbag import DagBag
        except ImportError:
            from airflow.models import DagBag

        bag = DagBag(dag_folder=str(dag_file.parent), include_examples=False)
        assert not bag.import_errors, bag.import_errors
        (dag,) = bag.dags.values()
        assert len(dag.tasks) == len(pipeline.nodes)
