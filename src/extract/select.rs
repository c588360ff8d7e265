//! Finding the article among the blocks: score containers by the prose they
//! hold, pick the best, add siblings that continue it, then drop what does
//! not belong (link lists, boilerplate phrases, small ad-like subtrees).

use std::collections::HashMap;

use ego_tree::NodeId;
use scraper::{Html, Node};

use super::dom::{RawBlock, Tag};
use super::hints::{hint, Hint};
use super::phrases;

#[derive(Default, Clone, Copy)]
struct Stats {
    score: f64,
    chars: usize,
    link_chars: usize,
    scored: bool,
}

/// Blocks shorter than this say little about where the article is.
const MIN_SCORING_CHARS: usize = 25;
/// How many ancestor levels a paragraph's score reaches.
const LEVELS: usize = 4;

fn punctuation(text: &str) -> usize {
    text.chars()
        .filter(|c| matches!(c, ',' | '，' | '、' | '。' | '.' | ';' | '،'))
        .count()
}

fn base_score(tag: &str, h: Hint) -> f64 {
    let mut s = match tag {
        "article" => 10.0,
        "main" | "section" => 3.0,
        "div" => 5.0,
        "pre" | "td" | "blockquote" => 3.0,
        "address" | "ol" | "ul" | "dl" | "dd" | "dt" | "li" | "form" => -3.0,
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "th" => -5.0,
        _ => 0.0,
    };
    if h.positive {
        s += 25.0;
    }
    if h.article_body {
        s += 50.0;
    }
    if h.strong_negative || h.weak_negative {
        s -= 25.0;
    }
    s
}

/// Returns the indices of `blocks` that make up the article, in order.
/// `forced` is a container named by site rules: it replaces the search.
pub fn select(
    doc: &Html,
    blocks: &[RawBlock],
    sizes: &HashMap<NodeId, usize>,
    forced: Option<NodeId>,
) -> Vec<usize> {
    let mut stats: HashMap<NodeId, Stats> = HashMap::with_capacity(blocks.len() * 2);
    let mut hints: HashMap<NodeId, Hint> = HashMap::new();
    // A wrapper whose text all sits in one child is that child, for scoring:
    // one <div> per paragraph must not hide the article from its container.
    let mut branching: HashMap<NodeId, bool> = HashMap::new();
    let mut is_branching = |n: ego_tree::NodeRef<'_, Node>| -> bool {
        *branching.entry(n.id()).or_insert_with(|| {
            n.children()
                .filter(|c| match c.value() {
                    Node::Element(_) => sizes.get(&c.id()).is_some_and(|&s| s > 0),
                    Node::Text(t) => !t.trim().is_empty(),
                    _ => false,
                })
                .nth(1)
                .is_some()
        })
    };
    let total_chars: usize = blocks.iter().map(|b| b.chars).sum();
    if total_chars == 0 {
        return Vec::new();
    }

    for b in blocks {
        let Some(node) = doc.tree.get(b.node) else {
            continue;
        };
        let density = b.link_chars as f64 / b.chars.max(1) as f64;
        let content =
            b.chars >= MIN_SCORING_CHARS && density < 0.5 && !matches!(b.tag, Tag::Heading(_));
        let points = 1.0 + punctuation(&b.text) as f64 + (b.chars as f64 / 100.0).min(3.0);
        // Text directly in a <div> scores that div; a <p>'s text scores its parent.
        let first = if matches!(b.tag, Tag::Div)
            && node.value().as_element().is_some_and(|e| e.name() != "p")
        {
            Some(node)
        } else {
            node.parent()
        };
        let mut level = 0;
        let mut cur = first;
        // Ancestors below `first` still count the text (for link density).
        for anc in node
            .ancestors()
            .take_while(|a| Some(a.id()) != first.map(|f| f.id()))
        {
            let st = stats.entry(anc.id()).or_default();
            st.chars += b.chars;
            st.link_chars += b.link_chars;
        }
        while let Some(n) = cur {
            let Node::Element(e) = n.value() else { break };
            let st = stats.entry(n.id()).or_default();
            st.chars += b.chars;
            st.link_chars += b.link_chars;
            if level < LEVELS {
                if !st.scored {
                    let h = hint(e);
                    hints.insert(n.id(), h);
                    st.score += base_score(e.name(), h);
                    st.scored = true;
                }
                if content {
                    let divider = match level {
                        0 => 1.0,
                        1 => 2.0,
                        l => l as f64 * 3.0,
                    };
                    st.score += points / divider;
                }
            }
            cur = n.parent();
            if let Some(p) = cur {
                if is_branching(p) {
                    level += 1;
                }
            }
        }
    }

    let final_score = |st: &Stats| {
        let density = st.link_chars as f64 / st.chars.max(1) as f64;
        st.score * (1.0 - density)
    };
    // Highest score; ties go to the earlier node for deterministic output.
    let mut best: Option<(NodeId, f64)> = None;
    let mut ids: Vec<&NodeId> = stats.keys().collect();
    ids.sort();
    for id in ids {
        let st = &stats[id];
        if !st.scored {
            continue;
        }
        let s = final_score(st);
        if best.is_none_or(|(_, b)| s > b) {
            best = Some((*id, s));
        }
    }
    let best = match forced {
        Some(id) => Some((id, f64::INFINITY)),
        None => best,
    };
    let Some((top, top_score)) = best else {
        return fallback(blocks);
    };
    // Readability's two corrections: when several strong candidates share an
    // ancestor, the article is that ancestor (text split into sections); and
    // a parent scoring higher than the chain below it is the better container.
    let (top, top_score) = if forced.is_some() {
        (top, top_score)
    } else {
        let is_anc = |a: NodeId, b: NodeId| {
            doc.tree
                .get(b)
                .is_some_and(|n| n.ancestors().any(|x| x.id() == a))
        };
        let mut ranked: Vec<(f64, NodeId)> = stats
            .iter()
            .filter(|(id, st)| {
                st.scored
                    && **id != top
                    && (final_score(st) >= top_score * 0.75
                        || (final_score(st) >= top_score * 0.3 && same_shape(doc, **id, top)))
            })
            .map(|(id, st)| (final_score(st), *id))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // Alternatives are separate pieces of text: not on the top's own chain
        // of ancestors and descendants, nor nested in one another.
        let mut strong: Vec<NodeId> = Vec::new();
        for (_, id) in ranked {
            if is_anc(id, top) || is_anc(top, id) {
                continue;
            }
            if strong.iter().any(|s| is_anc(*s, id) || is_anc(id, *s)) {
                continue;
            }
            strong.push(id);
        }
        let mut top = top;
        let mut top_score = top_score;
        // A candidate inside an aside or a sidebar-like wrapper is not the
        // article's continuation, however much prose it holds.
        strong.retain(|id| {
            doc.tree.get(*id).is_some_and(|n| {
                !std::iter::once(n)
                    .chain(n.ancestors())
                    .take_while(|a| !is_anc(a.id(), top))
                    .any(|a| {
                        a.value().as_element().is_some_and(|e| {
                            let h = hint(e);
                            matches!(e.name(), "aside" | "nav" | "footer" | "header")
                                || ((h.strong_negative || h.structural || h.weak_negative)
                                    && !h.positive)
                        })
                    })
            })
        });
        let repeated = strong.iter().any(|id| same_shape(doc, *id, top));
        if !strong.is_empty() {
            if let Some(top_node) = doc.tree.get(top) {
                for anc in top_node.ancestors() {
                    if !anc
                        .value()
                        .as_element()
                        .is_some_and(|e| e.name() != "body" && e.name() != "html")
                    {
                        break;
                    }
                    let contained = strong
                        .iter()
                        .filter(|id| {
                            doc.tree
                                .get(**id)
                                .is_some_and(|n| n.ancestors().any(|a| a.id() == anc.id()))
                        })
                        .count();
                    // ...and only when the ancestor is mostly those pieces, not
                    // a page wrapper that happens to hold them.
                    // Repeated units (a thread's posts) are measured whole, with
                    // their titles and bylines: the branch of `anc` holding each.
                    let branch = |id: NodeId| {
                        if !repeated {
                            return id;
                        }
                        doc.tree
                            .get(id)
                            .and_then(|n| {
                                std::iter::once(n)
                                    .chain(n.ancestors())
                                    .find(|a| a.parent().is_some_and(|p| p.id() == anc.id()))
                            })
                            .map_or(id, |n| n.id())
                    };
                    let mut parts: Vec<NodeId> = std::iter::once(top)
                        .chain(strong.iter().copied().filter(|id| is_anc(anc.id(), *id)))
                        .map(branch)
                        .collect();
                    parts.sort();
                    parts.dedup();
                    let pieces: usize = parts
                        .iter()
                        .filter_map(|id| stats.get(id))
                        .map(|s| s.chars)
                        .sum();
                    let anc_chars = stats.get(&anc.id()).map_or(usize::MAX, |s| s.chars);
                    if contained >= 1 && anc_chars * 2 <= pieces * 3 {
                        top = anc.id();
                        top_score = stats.get(&top).map_or(top_score, final_score);
                        break;
                    }
                }
            }
        }
        (top, top_score)
    };

    let mut chosen: Vec<NodeId> = vec![top];
    if let Some(top_node) = doc.tree.get(top).filter(|_| forced.is_none()) {
        if let Some(parent) = top_node.parent() {
            let threshold = (top_score * 0.2).max(10.0);
            for sib in parent.children() {
                if sib.id() == top || !sib.value().is_element() {
                    continue;
                }
                let Some(st) = stats.get(&sib.id()) else {
                    continue;
                };
                let density = st.link_chars as f64 / st.chars.max(1) as f64;
                let h = hints.get(&sib.id()).copied().unwrap_or_default();
                let ok = (st.scored && final_score(st) >= threshold && !h.strong_negative)
                    || (sib.value().as_element().is_some_and(|e| e.name() == "p")
                        && st.chars > 80
                        && density < 0.25);
                if ok {
                    chosen.push(sib.id());
                }
            }
        }
    }

    let container_chars: usize = chosen
        .iter()
        .filter_map(|id| stats.get(id))
        .map(|s| s.chars)
        .sum();
    let mut keep: Vec<usize> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let Some(node) = doc.tree.get(b.node) else {
            continue;
        };
        // Walk up to the chosen container, noting ad-like wrappers on the way.
        let mut inside = false;
        let mut weak_small = false;
        for anc in std::iter::once(node).chain(node.ancestors()) {
            if chosen.contains(&anc.id()) {
                inside = true;
                break;
            }
            if let Node::Element(e) = anc.value() {
                let h = hints.get(&anc.id()).copied().unwrap_or_else(|| hint(e));
                // Under a site's forced body, names do not judge blocks.
                if h.weak_negative && !h.positive && forced.is_none() {
                    let chars = stats.get(&anc.id()).map_or(b.chars, |s| s.chars);
                    if chars * 4 < container_chars {
                        weak_small = true;
                    }
                }
            }
        }
        if !inside || weak_small {
            continue;
        }
        let density = b.link_chars as f64 / b.chars.max(1) as f64;
        if density > 0.5 {
            continue;
        }
        // A list the article introduces ("The companies fined were:") is
        // its content, even when the items are share-button names.
        let introduced = b.tag == Tag::Li
            && keep
                .iter()
                .rev()
                .find(|&&k| blocks[k].tag != Tag::Li)
                .is_some_and(|&k| blocks[k].text.trim_end().ends_with([':', '：']));
        if phrases::is_boilerplate(&b.text, introduced) {
            continue;
        }
        keep.push(i);
    }
    drop_trailing_link_list(blocks, &mut keep);
    keep
}

/// Two elements with the same tag and first class: repeated units of one page
/// (the posts of a thread), where a shorter one is as much the text as the
/// longest.
fn same_shape(doc: &Html, a: NodeId, b: NodeId) -> bool {
    let el = |id: NodeId| doc.tree.get(id).and_then(|n| n.value().as_element());
    match (el(a), el(b)) {
        (Some(x), Some(y)) => {
            let first = |e: &scraper::node::Element| {
                e.attr("class")
                    .and_then(|c| c.split_whitespace().next().map(str::to_string))
            };
            x.name() == y.name() && first(x).is_some() && first(x) == first(y)
        }
        _ => false,
    }
}

/// "More stories" at the end of an article: a run of list items that each
/// link elsewhere, under a short heading, with no prose after it.
fn drop_trailing_link_list(blocks: &[RawBlock], keep: &mut Vec<usize>) {
    let run = keep
        .iter()
        .rev()
        .take_while(|&&i| blocks[i].tag == Tag::Li && blocks[i].link_chars > 0)
        .count();
    if run < 2 || run == keep.len() {
        return;
    }
    let head = &blocks[keep[keep.len() - run - 1]];
    let t = head.text.trim_end();
    let heading_like = matches!(head.tag, Tag::Heading(_))
        || (t.chars().count() < 80 && !t.ends_with(['.', '!', '?', '"', '”', '。']));
    if heading_like {
        keep.truncate(keep.len() - run - 1);
    }
}

/// No container stood out: keep every prose-like block.
fn fallback(blocks: &[RawBlock]) -> Vec<usize> {
    blocks
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            b.chars >= MIN_SCORING_CHARS
                && b.link_chars * 2 < b.chars
                && !phrases::is_boilerplate(&b.text, false)
        })
        .map(|(i, _)| i)
        .collect()
}
