//! Training an IVF index: the coarse quantizer (k-means, or the quantizer's own
//! training), then the codec on a subsample of the (residual) vectors.

use std::borrow::Cow;
use std::sync::OnceLock;

use fathom_core::{Error, Result, check};
use fathom_linalg::Kmeans;

use super::{IndexIvf, IvfCodec, IvfContext, QuantizerTraining};
use crate::Index;

/// At most `max` rows of `x` (all when `max` is 0), chosen as Faiss's
/// `fvecs_maybe_subsample` does (seed 1234; `fathom_linalg`'s one subsampling function), so
/// an encoder trains on the same points as in Faiss.
pub(super) fn subsample(x: &[f32], d: usize, max: usize) -> Cow<'_, [f32]> {
    match (max > 0)
        .then(|| fathom_linalg::sample::subsample(x, d, max, 1234))
        .flatten()
    {
        Some(rows) => Cow::Owned(rows),
        None => Cow::Borrowed(x),
    }
}

impl<C: IvfCodec + 'static> IndexIvf<C> {
    /// [`Index::train`]: the coarse quantizer, then the codec.
    pub(super) fn train_all(&mut self, x: &[f32]) -> Result<()> {
        check::nonempty_finite("training set", x, self.d)?;
        self.train_quantizer(x)?;
        let xs = &*subsample(x, self.d, self.codec.train_sample_size());
        let lists = if self.by_residual {
            self.assign(xs)?
        } else {
            Vec::new()
        };
        let r = {
            let ctx = self.context();
            self.residuals(&ctx, xs, &lists)?.into_owned()
        };
        let ctx = IvfContext {
            metric: self.metric,
            by_residual: self.by_residual,
            nlist: self.nlist,
            quantizer: &*self.quantizer,
            centroids: self.centroids.get().and_then(|c| c.as_deref()),
        };
        self.codec.train(&r, &lists, ctx)?;
        self.codec.invalidate();
        self.trained = true;
        Ok(())
    }

    fn train_quantizer(&mut self, x: &[f32]) -> Result<()> {
        if self.quantizer.is_trained() && self.quantizer.ntotal() == self.nlist {
            return Ok(());
        }
        match self.quantizer_training {
            QuantizerTraining::Alone => {
                self.quantizer.train(x)?;
                if self.quantizer.ntotal() != self.nlist {
                    return Err(Error::invalid(format!(
                        "the quantizer trained alone holds {} centroids; the index has {} lists",
                        self.quantizer.ntotal(),
                        self.nlist
                    )));
                }
            }
            QuantizerTraining::Kmeans | QuantizerTraining::KmeansThenAdd => {
                let mut km = Kmeans::new(self.d, self.nlist)?
                    .with_params(self.cp.clone())
                    .with_metric(self.metric)?;
                let flat = matches!(self.quantizer.view(), crate::IndexView::Flat(_));
                if flat || self.quantizer_training == QuantizerTraining::KmeansThenAdd {
                    // An exact quantizer assigns exactly as k-means' own engine does.
                    km.train(x)?;
                } else {
                    km.train_with_assigner(
                        x,
                        &mut crate::IndexAssigner(&mut *self.quantizer),
                        &mut |_| {},
                    )?;
                }
                self.quantizer.reset()?;
                if !self.quantizer.is_trained() {
                    self.quantizer.train(km.centroids()).map_err(|e| {
                        e.context(format!(
                            "training the quantizer {} on the {} k-means centroids",
                            self.quantizer.description(),
                            self.nlist
                        ))
                    })?;
                }
                self.quantizer.add(km.centroids())?;
            }
        }
        self.centroids = OnceLock::new();
        self.codec.invalidate();
        Ok(())
    }
}
