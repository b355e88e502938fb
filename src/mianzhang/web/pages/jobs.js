// Jobs page: to be completed by the jobs work.
export function mount(root) {
  root.textContent = "Jobs";
  return () => {};
}

export default { id: "jobs", title: "Jobs", mount };
