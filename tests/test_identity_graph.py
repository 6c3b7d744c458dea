"""connected_components() (dbt/macros/connected_components.sql) equals a union-find over the same
links, for graphs of any shape, on both warehouses."""

from __future__ import annotations

import hashlib
import random

import networkx as nx
import pytest

from dagster_project.warehouse import Warehouse

from dbt_runner import run_operation


def node(i: int) -> str:
    # Callers of the macro use prefixed hex digests, which sort alike in every collation.
    return "4" + hashlib.md5(str(i).encode()).hexdigest()


def random_graph(seed: int) -> nx.Graph:
    rng = random.Random(seed)
    graph = nx.Graph()
    next_id = 0

    def fresh(count):
        nonlocal next_id
        ids = [node(i) for i in range(next_id, next_id + count)]
        next_id += count
        graph.add_nodes_from(ids)
        return ids

    chain = fresh(rng.randint(300, 700))  # a long chain: the case a fixed number of passes gets wrong
    graph.add_edges_from(zip(chain, chain[1:]))
    for _ in range(20):
        hub, *spokes = fresh(rng.randint(2, 30))  # stars
        graph.add_edges_from((hub, spoke) for spoke in spokes)
    for _ in range(20):
        ring = fresh(rng.randint(3, 40))  # cycles
        graph.add_edges_from(zip(ring, ring[1:] + ring[:1]))
    fresh(50)  # isolated nodes
    loose = fresh(400)  # random sparse links, some joining the shapes above
    everything = list(graph.nodes)
    for _ in range(300):
        graph.add_edge(rng.choice(loose), rng.choice(everything))
    return graph


def load_graph(warehouse: Warehouse, graph: nx.Graph) -> None:
    with warehouse.connect() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS graph_test")
        conn.execute("CREATE TABLE graph_test.edges (node_a VARCHAR, node_b VARCHAR)")
        conn.execute("CREATE TABLE graph_test.nodes (node VARCHAR)")
        # Edges in random direction and order; a duplicate and a self-loop must change nothing.
        edges = list(graph.edges) + [next(iter(graph.edges))] + [(next(iter(graph.nodes)),) * 2]
        for a, b in edges:
            conn.execute("INSERT INTO graph_test.edges VALUES (?, ?)", [a, b])
        for n in graph.nodes:
            conn.execute("INSERT INTO graph_test.nodes VALUES (?)", [n])


@pytest.mark.parametrize("seed", [1, 2])
def test_components_equal_union_find(warehouse, settings, prepared_dbt, seed):
    graph = random_graph(seed)
    load_graph(warehouse, graph)
    run_operation(
        settings, "connected_components",
        edges_sql="select node_a, node_b from graph_test.edges",
        nodes_sql="select node from graph_test.nodes",
        work_schema="graph_test", name="cc",
    )
    with warehouse.connect() as conn:
        labels = dict(conn.fetchall("SELECT node, component FROM graph_test.cc__labels"))
    assert set(labels) == set(graph.nodes)
    expected = list(nx.connected_components(graph))
    assert len(set(labels.values())) == len(expected)
    for component in expected:
        assert {labels[n] for n in component} == {min(component)}
