// ODP
