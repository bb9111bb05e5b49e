"""No import cycles among app/, models/, recorders/ and widgets/ (DESIGN.md section 1: dependencies
point one way, inside the layers as well as between them).

A cycle works only while every module of it happens to be imported in one order; moving an import
or importing one of them first breaks it with a half-initialised module. The graph is read from the
source (tests/import_graph.py): absolute and relative imports, also those inside functions.
"""
from __future__ import annotations

from import_graph import import_graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (a cycle each)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest path a -> ... -> a inside the component, to name in the failure message."""
    start, members = component[0], set(component)
    paths = {succ: [start, succ] for succ in sorted(graph[start] & members)}
    frontier = list(paths)
    while start not in paths:
        next_frontier = []
        for node in frontier:
            for succ in sorted(graph[node] & members):
                if succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    next_frontier.append(succ)
        frontier = next_frontier
    return paths[start]


def test_strongly_connected_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert one_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_the_project_has_no_import_cycles():
    graph = import_graph()
    assert "recorders.cell.registry" in graph["recorders.episode_meta"]  # the graph is read, not empty
    cycles = [" -> ".join(one_cycle(graph, component)) + f"  (modules tied in it: {', '.join(component)})"
              for component in strongly_connected(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)
