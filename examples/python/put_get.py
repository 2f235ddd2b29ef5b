# Objects: put returns a ref at once; get waits for the value.
import prism

obj_ref = prism.put(1)
assert prism.get(obj_ref) == 1
print(prism.get(obj_ref))  # 1
print(prism.get([prism.put(i) for i in range(3)]))  # [0, 1, 2]
