"""icl-labels: the experiments of 'In-Context Learning Learns Label Relationships but
Is Not Conventional Learning' (Kossen, Gal, Rainforth; ICLR 2024) on any causal LM."""
