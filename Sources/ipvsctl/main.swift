print("ipvsctl")
