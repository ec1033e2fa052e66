"""Building a study's pipeline costs time linear in its variants: each pipeline is
constructed (validated, toposorted) a fixed number of times, never once per variant."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline, node

from cnn_lab.runtime import hooks
from cnn_lab.study.shared_nodes import combine


def _identity(x):
    return x


def _gather(*results):
    return list(results)


def test_combine_keeps_order_and_equal_nodes_once() -> None:
    a = node(_identity, "x", "y", name="a")
    b = node(_identity, "y", "z", name="b")
    c = node(_identity, "z", "w", name="c")
    combined = combine(Pipeline([a, b]), [Pipeline([b]), c], Pipeline([]))
    assert [n.name for n in combined.nodes] == ["a", "b", "c"]
    assert set(combined.nodes) == set((Pipeline([a]) + Pipeline([b]) + Pipeline([c])).nodes)


def test_combine_still_rejects_two_different_nodes_of_one_name() -> None:
    with pytest.raises(ValueError, match="unique names"):
        combine(node(_identity, "x", "y", name="a"), node(_identity, "x", "z", name="a"))


def _large_constructions(monkeypatch: pytest.MonkeyPatch, variants: int) -> int:
    """Pipelines of over 50 nodes constructed while building a cnn_depth grid."""
    from cnn_lab.pipelines.cnn_depth.pipeline import create_pipeline

    depths = list(range(1, variants // 3 + 1))
    groups = {"mlp": {"families": ["mlp", "mlp_bn", "resmlp"], "depths": depths}}
    monkeypatch.setattr(hooks, "_run_parameters", {"cnn_depth": {"groups": groups}})
    init = Pipeline.__init__
    sizes: list[int] = []

    def counting(self, nodes, *args, **kwargs):
        init(self, nodes, *args, **kwargs)
        sizes.append(len(self._nodes))

    monkeypatch.setattr(Pipeline, "__init__", counting)
    built = create_pipeline()
    monkeypatch.setattr(Pipeline, "__init__", init)
    assert sum("training" in n.tags for n in built.nodes) == variants
    return sum(size > 50 for size in sizes)


def test_cnn_depth_grid_is_built_in_a_fixed_number_of_large_constructions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = _large_constructions(monkeypatch, 60)
    large = _large_constructions(monkeypatch, 600)
    # Repeated ``+`` / ``sum`` built one large pipeline per variant: 60 and 600.
    assert small == large <= 2


def test_study_grid_hook_keeps_the_pipelines_a_run_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rebuilding pipelines from the run's parameters must not make ``kedro run
    --pipelines=cnn_depth`` build (and import) every other study as well."""
    from kedro.framework.project import pipelines

    monkeypatch.setattr(hooks, "_read_run_parameters", lambda context: {})
    module = pipelines._pipelines_module
    pipelines.set_requested(["cnn_depth"])
    try:
        hooks.StudyGridHook().after_context_created(context=None)
        assert pipelines._requested_pipelines == ["cnn_depth"]
    finally:
        pipelines.configure(module)  # as other tests found it: nothing requested


def test_wide_node_equals_a_plain_node_and_hashes_once() -> None:
    import pickle

    from cnn_lab.study.shared_nodes import wide_node

    inputs = [f"v{i}.result" for i in range(500)]
    wide = wide_node(_gather, inputs, "summary", name="summarise", tags=["report"])
    plain = node(_gather, inputs, "summary", name="summarise", tags=["report"])
    assert wide == plain and hash(wide) == hash(plain)
    tagged = Pipeline([wide], tags=["more"], namespace="study").nodes[0]  # Kedro copies it
    assert type(tagged) is type(wide) and tagged.name == "study.summarise"
    assert "more" in tagged.tags and hash(tagged) == hash(tagged._unique_key)
    restored = pickle.loads(pickle.dumps(wide))  # a worker process hashes strings anew
    assert "_hash" not in restored.__dict__ and restored == plain
