print("ipvs-agent: not yet implemented")
