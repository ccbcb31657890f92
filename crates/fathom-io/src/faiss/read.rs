//! Reading index records: the fourcc says which family's reader (`flat`, `codes`, `ivf`,
//! `hnsw`, `wrappers`) takes the record; each record is read one level deeper
//! ([`Cursor::nested`] bounds the depth).

use fathom_core::Result;
use fathom_index::Index;

use super::cursor::Cursor;
use super::{additive, codes, flat, hnsw, ivf, rabitq, wrappers};

/// One index record, fourcc included.
pub(crate) fn read_index(c: &mut Cursor<'_>) -> Result<Box<dyn Index>> {
    c.nested(|c| {
        let at = c.pos();
        let fourcc = c.fourcc()?;
        let index: Box<dyn Index> = match &fourcc {
            b"IxF2" | b"IxFI" | b"IxFl" => Box::new(flat::read_flat_body(c, &fourcc)?),
            b"IxHe" | b"IxHE" => Box::new(codes::read_lsh_body(c, &fourcc)?),
            b"IxPq" | b"IxPQ" | b"IxPo" => Box::new(codes::read_pq_body(c, &fourcc)?),
            b"IxSQ" => Box::new(codes::read_sq_body(c)?),
            b"IPfs" => Box::new(codes::read_pq_fastscan_body(c)?),
            b"Ixrq" | b"Ixrr" => Box::new(rabitq::read_flat_body(c, &fourcc)?),
            b"Iwrq" | b"Iwrr" => rabitq::read_ivf_body(c, &fourcc)?,
            b"Irfn" => Box::new(rabitq::read_flat_fast_scan_body(c)?),
            b"Iwrn" => rabitq::read_ivf_fast_scan_body(c)?,
            f if additive::is_flat_fourcc(f) => Box::new(additive::read_flat_body(c, &fourcc)?),
            f if additive::is_ivf_fourcc(f) => additive::read_ivf_body(c, &fourcc)?,
            b"ImRQ" => Box::new(additive::read_rcq_body(c)?),
            f if additive::is_ivf_fast_scan_fourcc(f) => {
                additive::read_ivf_fast_scan_body(c, &fourcc)?
            }
            f if additive::is_fast_scan_fourcc(f) => {
                Box::new(additive::read_fast_scan_body(c, &fourcc)?)
            }
            b"IxMp" | b"IxM2" => wrappers::read_id_map_body(c, &fourcc)?,
            b"IxPT" => wrappers::read_pretransform_body(c)?,
            b"IxRF" => Box::new(wrappers::read_refine_body(c)?),
            b"Imiq" => Box::new(ivf::read_multi_index_body(c)?),
            b"IHNf" => Box::new(hnsw::read_hnsw_body(c, flat::read_flat)?),
            b"IHNs" => Box::new(hnsw::read_hnsw_body(c, codes::read_sq)?),
            b"IHNp" => Box::new(hnsw::read_hnsw_body(c, codes::read_pq_index)?),
            b"IwFl" | b"IvFl" | b"IvFL" | b"IwSq" | b"IwSQ" | b"IvSQ" | b"IwPQ" | b"IwQR"
            | b"IvPQ" | b"IvQR" | b"IwPf" => ivf::read_ivf_body(c, &fourcc)?,
            b"null" => return Err(c.err("the file stores no index here (a \"null\" record)")),
            other => {
                return Err(c.err_at(
                    at,
                    format!(
                        "unknown or unsupported index type {:?}",
                        String::from_utf8_lossy(other)
                    ),
                ));
            }
        };
        Ok(index)
    })
}
