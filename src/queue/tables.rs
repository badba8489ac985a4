//! Every statement Cartback runs on apalis's own tables, in both dialects.
