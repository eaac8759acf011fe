"""Reading and writing models: the one loader (Constant weights lifted, external data lazy), atomic saves, the one
protobuf view and graph walker.
"""
