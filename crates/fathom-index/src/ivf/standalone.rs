//! The IVF standalone codec (Faiss's `sa_encode` / `sa_decode` / `add_sa_codes` on
//! `IndexIVF`): a code is the list number in `coarse_code_size` little-endian bytes, then
//! the codec's code of the vector (of its residual, when the index encodes residuals).

use fathom_core::{Error, Idx, Result, check};

use super::{IndexIvf, IvfCodec};
use crate::Index;

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// Bytes that hold a list number: the fewest that hold `nlist - 1` (Faiss's
    /// `coarse_code_size`).
    pub fn coarse_code_size(&self) -> usize {
        let mut rest = self.nlist.saturating_sub(1);
        let mut bytes = 0;
        while rest > 0 {
            bytes += 1;
            rest >>= 8;
        }
        bytes
    }

    pub(super) fn sa_code_size_ivf(&self) -> usize {
        self.coarse_code_size() + self.codec.code_size()
    }

    pub(super) fn sa_encode_ivf(&self, x: &[f32]) -> Result<Vec<u8>> {
        if !self.is_trained() {
            return Err(Error::NotTrained("sa_encode".into()));
        }
        let n = check::vectors("encoded", x, self.d)?;
        check::finite("encoded", x, self.d)?;
        let lists = self.assign(x)?;
        let cs = self.codec.code_size();
        let codes = self.encode_assigned(x, &lists)?;
        let lb = self.coarse_code_size();
        let mut out = Vec::with_capacity(n * (lb + cs));
        for (&list, code) in lists.iter().zip(codes.chunks_exact(cs.max(1))) {
            out.extend_from_slice(&(list as u64).to_le_bytes()[..lb]);
            out.extend_from_slice(&code[..cs]);
        }
        Ok(out)
    }

    /// Splits standalone codes into list numbers and codec codes, checking both.
    fn split_sa_codes(&self, codes: &[u8]) -> Result<(Vec<Idx>, Vec<u8>)> {
        let (lb, cs) = (self.coarse_code_size(), self.codec.code_size());
        let n = check::codes("standalone codes", codes, lb + cs)?;
        let mut lists = Vec::with_capacity(n);
        let mut flat = Vec::with_capacity(n * cs);
        for code in codes.chunks_exact(lb + cs) {
            let mut word = [0u8; 8];
            word[..lb].copy_from_slice(&code[..lb]);
            let list = u64::from_le_bytes(word);
            if list >= self.nlist as u64 {
                return Err(Error::invalid(format!(
                    "a standalone code names list {list}; the index has {} lists",
                    self.nlist
                )));
            }
            lists.push(list as Idx);
            flat.extend_from_slice(&code[lb..]);
        }
        Ok((lists, flat))
    }

    pub(super) fn sa_decode_ivf(&self, codes: &[u8]) -> Result<Vec<f32>> {
        if !self.is_trained() {
            return Err(Error::NotTrained("sa_decode".into()));
        }
        let (lists, flat) = self.split_sa_codes(codes)?;
        let (d, cs) = (self.d, self.codec.code_size());
        let ctx = self.context();
        let mut out = vec![0.0f32; lists.len() * d];
        for ((&list, code), x) in lists
            .iter()
            .zip(flat.chunks_exact(cs.max(1)))
            .zip(out.chunks_exact_mut(d))
        {
            self.codec.decode(&code[..cs], x);
            if self.by_residual {
                let c = ctx.centroid(list as usize)?;
                x.iter_mut().zip(c.iter()).for_each(|(v, c)| *v += c);
            }
        }
        Ok(out)
    }

    pub(super) fn add_sa_codes_ivf(&mut self, codes: &[u8], ids: Option<&[Idx]>) -> Result<()> {
        let (lists, flat) = self.split_sa_codes(codes)?;
        self.add_preassigned_codes(&lists, &flat, ids)
    }
}
