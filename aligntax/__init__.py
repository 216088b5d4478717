"""aligntax: detoxify a summarizer without paying the alignment tax (a DVC pipeline and its library)."""
