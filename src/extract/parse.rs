//! Parsing with a work budget. html5ever has inputs with quadratic cost
//! (scope checks scan the stack of open elements; the adoption agency
//! re-opens formatting elements). `depth::cap_depth` removes the known
//! shapes before parsing; this is the backstop for the rest: the parser is
//! fed in chunks through a tree sink that counts its calls (each scanned
//! element in a scope check is one `elem_name`), and feeding stops when the
//! count passes the budget. What was parsed by then is the page.
//!
//! The count depends only on the input, so the cut is deterministic.

use std::borrow::Cow;
use std::cell::{Cell, Ref};

use ego_tree::NodeId;
use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeSink};
use html5ever::{Attribute, QualName};
use scraper::{Html, HtmlTreeSink};

/// Bytes fed to the parser at a time: the budget is checked between chunks,
/// and one chunk of a quadratic input must not overshoot it by much (1 KiB
/// cost 5% more CPU on ordinary pages than 8 KiB).
const CHUNK: usize = 8 * 1024;
/// Sink calls allowed per input byte, plus a fixed floor. Ordinary pages make
/// under one call per byte (0.63 at most on the extraction benchmark);
/// quadratic inputs make thousands. A unit costs under 100 ns even in the
/// worst shapes, so a 5 MiB page stops within about 1.5 s.
const WORK_PER_BYTE: u64 = 3;
const WORK_FLOOR: u64 = 2_000_000;

struct Budgeted {
    inner: HtmlTreeSink,
    work: Cell<u64>,
}

impl Budgeted {
    fn tick(&self) {
        self.work.set(self.work.get() + 1);
    }
}

impl TreeSink for Budgeted {
    type Handle = NodeId;
    type Output = Html;
    type ElemName<'a> = Ref<'a, QualName>;

    fn finish(self) -> Html {
        self.inner.finish()
    }
    fn parse_error(&self, msg: Cow<'static, str>) {
        self.inner.parse_error(msg)
    }
    fn get_document(&self) -> NodeId {
        self.inner.get_document()
    }
    fn elem_name<'a>(&'a self, target: &'a NodeId) -> Ref<'a, QualName> {
        self.tick();
        self.inner.elem_name(target)
    }
    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> NodeId {
        self.tick();
        self.inner.create_element(name, attrs, flags)
    }
    fn create_comment(&self, text: StrTendril) -> NodeId {
        self.tick();
        self.inner.create_comment(text)
    }
    fn create_pi(&self, target: StrTendril, data: StrTendril) -> NodeId {
        self.inner.create_pi(target, data)
    }
    fn append(&self, parent: &NodeId, child: NodeOrText<NodeId>) {
        self.tick();
        self.inner.append(parent, child)
    }
    fn append_based_on_parent_node(
        &self,
        element: &NodeId,
        prev_element: &NodeId,
        child: NodeOrText<NodeId>,
    ) {
        self.tick();
        self.inner
            .append_based_on_parent_node(element, prev_element, child)
    }
    fn append_doctype_to_document(
        &self,
        name: StrTendril,
        public_id: StrTendril,
        system_id: StrTendril,
    ) {
        self.inner
            .append_doctype_to_document(name, public_id, system_id)
    }
    fn mark_script_already_started(&self, node: &NodeId) {
        self.inner.mark_script_already_started(node)
    }
    fn get_template_contents(&self, target: &NodeId) -> NodeId {
        self.inner.get_template_contents(target)
    }
    fn same_node(&self, x: &NodeId, y: &NodeId) -> bool {
        self.tick();
        self.inner.same_node(x, y)
    }
    fn set_quirks_mode(&self, mode: QuirksMode) {
        self.inner.set_quirks_mode(mode)
    }
    fn append_before_sibling(&self, sibling: &NodeId, new_node: NodeOrText<NodeId>) {
        self.tick();
        self.inner.append_before_sibling(sibling, new_node)
    }
    fn add_attrs_if_missing(&self, target: &NodeId, attrs: Vec<Attribute>) {
        self.tick();
        self.inner.add_attrs_if_missing(target, attrs)
    }
    fn remove_from_parent(&self, target: &NodeId) {
        self.tick();
        self.inner.remove_from_parent(target)
    }
    fn reparent_children(&self, node: &NodeId, new_parent: &NodeId) {
        self.tick();
        self.inner.reparent_children(node, new_parent)
    }
}

/// The budget for an input of `len` bytes.
pub fn budget(len: usize) -> u64 {
    WORK_FLOOR + WORK_PER_BYTE * len as u64
}

/// Parses `html` as a document, stopping early once the parser has done
/// `budget` units of work. Returns the document and whether it was cut.
pub fn parse(html: &str, budget: u64) -> (Html, bool) {
    let sink = Budgeted {
        inner: HtmlTreeSink::new(Html::new_document()),
        work: Cell::new(0),
    };
    let mut parser = html5ever::driver::parse_document(sink, Default::default());
    let mut rest = html;
    let mut cut = false;
    while !rest.is_empty() {
        let mut end = CHUNK.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (chunk, tail) = rest.split_at(end);
        parser.process(StrTendril::from_slice(chunk));
        rest = tail;
        if !rest.is_empty() && parser.tokenizer.sink.sink.work.get() > budget {
            cut = true;
            break;
        }
    }
    (parser.finish(), cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_scraper() {
        let html = "<html><body><div class=a><p>one<p>two</div><table><tr><td>x</table>";
        let (doc, cut) = parse(html, budget(html.len()));
        assert!(!cut);
        assert_eq!(doc.html(), Html::parse_document(html).html());
    }

    #[test]
    fn stops_when_the_work_runs_out() {
        let html = "<p>".to_string() + &"word ".repeat(20_000);
        let (doc, cut) = parse(&html, 10);
        assert!(cut);
        let text: String = doc.root_element().text().collect();
        assert!(text.len() < html.len() / 2 && text.starts_with("word"));
    }
}
