//! Reading length-prefixed binary layouts (signed sync messages, bucket objects): a
//! cursor that fails with the caller's error when the bytes end early.

/// A cursor over bytes from outside; `short` is the error for bytes that end early.
pub(crate) struct Reader<'a, E> {
    rest: &'a [u8],
    short: E,
}

impl<'a, E: Clone> Reader<'a, E> {
    pub(crate) fn new(bytes: &'a [u8], short: E) -> Reader<'a, E> {
        Reader { rest: bytes, short }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], E> {
        if self.rest.len() < n {
            return Err(self.short.clone());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], E> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// What is left.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }
}
