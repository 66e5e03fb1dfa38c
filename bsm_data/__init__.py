"""Engine-free data logic for BSM: parsers, extraction, pairing, tokenizer, packing, shards."""
