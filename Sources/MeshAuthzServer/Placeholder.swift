import MeshAuthz
