print("meshauthz")
