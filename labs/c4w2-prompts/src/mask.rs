//! The token mask of constrained decoding: which of the vocabulary's 49,152 tokens keep the
//! output a prefix of the schema's language, found by walking a trie of the tokens' bytes.
//!
//! Checking every token separately costs the sum of all token lengths per step (332,150
//! automaton steps for SmolLM2's ordinary tokens). A trie shares common prefixes: all tokens that start with
//! `"na` are checked by one walk down `"`, `n`, `a`, and when the automaton refuses a byte, the
//! whole subtree below it is skipped at once. This is the token-trie walk of llguidance's
//! `toktrie` (Moskal et al., "llguidance", 2024) and of Outlines' vocabulary index (Willard &
//! Louf, 2023). Nodes are stored in depth-first pre-order with the index just past their
//! subtree, so the walk is a loop over an array and "skip the subtree" is one assignment.

use kernels::tokenize::Bpe;

use crate::Result;
use crate::schema::JsonAutomaton;

/// One bit per token id: bit `id % 32` of word `id / 32` (the layout of `kernels::constrain::TokenMask`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    words: Vec<u32>,
    len: usize,
}

impl Mask {
    /// A mask of `len` tokens, none allowed.
    pub fn new(len: usize) -> Mask {
        Mask { words: vec![0; len.div_ceil(32)], len }
    }

    /// Allows token `id` (ids at or past `len` are ignored).
    pub fn allow(&mut self, id: u32) {
        if (id as usize) < self.len {
            self.words[id as usize / 32] |= 1 << (id % 32);
        }
    }

    /// Whether token `id` is allowed.
    pub fn is_allowed(&self, id: u32) -> bool {
        (id as usize) < self.len && self.words[id as usize / 32] >> (id % 32) & 1 == 1
    }

    /// How many tokens are allowed.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The allowed ids, ascending.
    pub fn allowed_ids(&self) -> Vec<u32> {
        (0..self.len as u32).filter(|&id| self.is_allowed(id)).collect()
    }

    /// The words.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    /// Number of token ids the mask covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mask covers no token ids.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One trie node, stored in depth-first pre-order (the root is node 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrieNode {
    /// The byte on the edge from the parent (0 for the root).
    pub byte: u8,
    /// Depth: the root is 0, a child of the root 1, …
    pub depth: u32,
    /// The tokens whose bytes end here: `token_ids[first_token..end_token]`.
    pub first_token: u32,
    /// One past the last token of this node in `token_ids`.
    pub end_token: u32,
    /// The index just past this node's subtree: its descendants are `self + 1 .. subtree_end`.
    pub subtree_end: u32,
}

/// A trie over the bytes of every ordinary token of a vocabulary, built once per tokenizer.
#[derive(Debug, Clone)]
pub struct TokenTrie {
    /// The nodes in depth-first pre-order, children of a node in ascending byte order.
    nodes: Vec<TrieNode>,
    /// Token ids, grouped by the node their bytes end at.
    token_ids: Vec<u32>,
    /// Size of the vocabulary (the masks' length).
    vocab_len: usize,
    /// The end-of-sequence token: allowed exactly when the output is complete.
    eos: u32,
}

impl TokenTrie {
    // ANCHOR: trie_new
    /// Task c4w2.token-mask, part 1: the trie of `bpe`'s tokens.
    ///
    /// Every token id with non-empty bytes ([`Bpe::token_bytes`]) that is not special
    /// ([`Bpe::is_special`]) goes in; special tokens never match text, and `eos` is handled
    /// apart. Sort the `(bytes, id)` pairs by bytes (then id): in that order each token's path
    /// shares its longest possible prefix with the previous one, so the nodes come out in
    /// pre-order if you keep a stack of the open nodes (pop to the common prefix, push one node
    /// per new byte, and when a node is popped set its `subtree_end` to the current node count).
    ///
    /// # Errors
    /// [`crate::Error::Tokenizer`] when the tokenizer fails.
    pub fn new(bpe: &Bpe, eos: u32) -> Result<TokenTrie> {
        todo!("c4w2.token-mask")
    }
    // ANCHOR_END: trie_new

    /// The nodes, in pre-order.
    pub fn nodes(&self) -> &[TrieNode] {
        &self.nodes
    }

    /// The ids of the tokens that end at `node`.
    pub fn tokens_at(&self, node: &TrieNode) -> &[u32] {
        &self.token_ids[node.first_token as usize..node.end_token as usize]
    }

    /// Size of the vocabulary.
    pub fn vocab_len(&self) -> usize {
        self.vocab_len
    }

    /// The end-of-sequence token.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    // ANCHOR: mask
    /// Task c4w2.token-mask (15 points with [`TokenTrie::new`]): the tokens allowed after the
    /// bytes `state` has read.
    ///
    /// Walk the nodes in order, keeping one automaton per depth (`states[d]` is `state` after the
    /// bytes of the path to the current node at depth `d`; reuse them with
    /// [`JsonAutomaton::set_from`] instead of cloning). At node `i` of depth `d`: copy
    /// `states[d - 1]` into `states[d]` and step it with the node's byte. Refused: jump to
    /// `subtree_end` (no token below can be allowed). Allowed: allow every token ending at the
    /// node and go on to `i + 1`. Finally, allow `eos` when `state` is complete.
    pub fn mask(&self, state: &JsonAutomaton) -> Mask {
        todo!("c4w2.token-mask")
    }
    // ANCHOR_END: mask
}

/// Advances `state` over the bytes of `token` (a token the mask allowed); `false` when a byte is
/// refused (a token the mask did not allow).
///
/// # Errors
/// [`crate::Error::Tokenizer`] for an id outside the vocabulary.
pub fn commit(bpe: &Bpe, state: &mut JsonAutomaton, token: u32) -> Result<bool> {
    Ok(state.feed(bpe.token_bytes(token)?))
}
