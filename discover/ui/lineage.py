"""The lineage tree: from the oldest ancestor (along first parents) down through a design to its descendants.

Only the path to the design and the design's children are read at first; an ancestor's other children
wait behind a "… other children" line, and any node's children are read when it is first expanded, so
the tree opens at once over thousands of designs and long lineages.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from discover import inspect

MAX_CHILDREN = 200  # per node; the rest are summarized in one line


@dataclass(frozen=True)
class MoreChildren:
    """Tree data of the line that stands for an ancestor's children not shown yet."""

    parent_id: int


class LineageScreen(Screen):
    """Ancestors and descendants of one design; enter opens the design under the cursor."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("space", "toggle", "expand"),
    ]

    def __init__(self, design_id: int):
        super().__init__()
        self.design_id = design_id
        self.loaded: set[int] = set()  # designs whose children are all in the tree
        self.deferred: set[int] = set()  # ancestors whose other children wait behind a "… other children" line

    @property
    def tier(self) -> tuple[str | None, int | None]:
        """Results are shown at the leaderboard's tier."""
        return self.app.tier or (None, None)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="lineage-head")
        tree: Tree[int | MoreChildren] = Tree("lineage", id="lineage")
        tree.auto_expand = False
        tree.show_root = False
        yield tree
        yield Footer()

    def on_mount(self) -> None:
        db = self.app.db
        chain = [*reversed([d.id for d in db.records.lineage(self.design_id)]), self.design_id]
        summaries, children = db.views.design_summaries(chain, *self.tier), db.views.children_of(chain)
        tree = self.query_one(Tree)
        node, parent_id = tree.root, None
        for design_id in chain:
            if parent_id is not None and (others := len(children[parent_id]) - 1) > 0:
                node.add_leaf(f"… {others} other {'child' if others == 1 else 'children'} (enter shows them)",
                              data=MoreChildren(parent_id))
            node = self._add(node, summaries[design_id], has_children=design_id in children, before=0)
            if design_id != self.design_id:
                self.deferred.add(design_id)
            node.expand()
            parent_id = design_id
        self._load_children(node)
        self.query_one("#lineage-head", Static).update(
            f"lineage of #{self.design_id}: {len(chain) - 1} ancestor(s) along first parents · "
            "enter opens a design · space expands")
        tree.focus()
        self.call_after_refresh(tree.move_cursor, node)

    def _add(self, parent: TreeNode, summary: dict, has_children: bool, before: int | None = None) -> TreeNode:
        label = inspect.node_label(inspect.node(summary))
        if summary["id"] == self.design_id:
            label = f"[b]{label}[/b]"
        return parent.add(label, data=summary["id"], allow_expand=has_children, before=before)

    def _load_children(self, node: TreeNode) -> None:
        """Add the node's children not in the tree yet (once), each expandable when it has children of its own."""
        design_id = node.data
        if not isinstance(design_id, int) or design_id in self.loaded:
            return
        self.loaded.add(design_id)
        views = self.app.db.views
        shown = {child.data for child in node.children}
        new = [i for i in views.child_ids(design_id) if i not in shown]
        ids = new[:MAX_CHILDREN]
        summaries, grandchildren = views.design_summaries(ids, *self.tier), views.children_of(ids)
        for child_id in ids:
            self._add(node, summaries[child_id], has_children=child_id in grandchildren)
        if len(new) > len(ids):
            node.add_leaf(f"… {len(new) - len(ids)} more children not shown")

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        if event.node.data not in self.deferred:
            self._load_children(event.node)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        data = event.node.data
        if isinstance(data, MoreChildren):
            parent = event.node.parent
            event.node.remove()
            self.deferred.discard(data.parent_id)
            self._load_children(parent)
        elif isinstance(data, int):
            self.app.open_design(data)

    def action_toggle(self) -> None:
        tree = self.query_one(Tree)
        if tree.cursor_node is not None:
            tree.cursor_node.toggle()
